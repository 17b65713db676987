-- The admin keys that were shown an agent's client secret or registered its signing keys could act as the
-- agent, so they may not approve its token requests (src/approvals). They were read from the audit log
-- when a request was held: a key given the credentials afterwards was not among them, and once retention
-- pruned the agent.create event, neither was the key that registered it. Kept on the agent instead,
-- written with each change of its credentials; filled here from the events not pruned yet.
ALTER TABLE "Agent" ADD COLUMN "credentialHolders" TEXT[] NOT NULL DEFAULT '{}';
UPDATE "Agent" a SET "credentialHolders" = ARRAY(
  SELECT DISTINCT e.actor FROM "AuditEvent" e
   WHERE e.kind = 'admin.change' AND e."agentId" = a.id
     AND e.details->>'action' IN ('agent.create', 'agent.rotate_secret', 'agent.set_jwks')
   ORDER BY e.actor
);
