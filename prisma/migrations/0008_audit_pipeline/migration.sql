-- Issue 14: one audit pipeline. Written by hand: Prisma's schema language cannot express the functions.

-- Every event has an identity, given by its writer: a write whose commit outcome is unknown (the connection
-- cut after COMMIT) is simply sent again, and what is already in is skipped, never inserted twice.
ALTER TABLE "AuditEvent" ADD COLUMN "eventId" TEXT;
CREATE UNIQUE INDEX "AuditEvent_eventId_key" ON "AuditEvent"("eventId");

-- The write-ahead journal is gone (src/audit/log.ts is the one pipeline).
DROP TABLE "AuditJournalCursor";

-- Events the database refused even after their agent-controlled text was made storable: kept here with the
-- reason, so they never block the events behind them (src/audit/log.ts). `event` is the row as JSON text,
-- every character outside printable ASCII escaped, which any PostgreSQL text column stores.
CREATE TABLE "AuditSetAside" (
    "id" SERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "eventId" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "event" TEXT NOT NULL,

    CONSTRAINT "AuditSetAside_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "AuditSetAside_eventId_key" ON "AuditSetAside"("eventId");

-- The chain is linked per batch, not per row: one lock of the chain head and one update of it for a whole
-- group commit, instead of a lock and an UPDATE for every row (migration 0002's trigger, dropped here).
-- Takes events as a JSON array, each with its content columns, "eventId", "contentHash" (computed by the
-- writer: src/audit/chain.ts) and "seq" (its place in the batch). Events whose eventId is already in are
-- skipped; the others get, in seq order, the next ids, their prevHash and
-- hash = sha256(prevHash | id | contentHash). Returns how many were inserted.
DROP TRIGGER "AuditEvent_link" ON "AuditEvent";
DROP FUNCTION keyward_audit_link();

CREATE FUNCTION keyward_audit_append(events jsonb) RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  last_id bigint;
  last_hash text;
  event RECORD;
  event_ids text[] := '{}';
  ids bigint[] := '{}';
  prev_hashes text[] := '{}';
  hashes text[] := '{}';
BEGIN
  SELECT "lastId", "lastHash" INTO STRICT last_id, last_hash FROM "AuditChainHead" WHERE "id" = 1 FOR UPDATE;
  FOR event IN
    SELECT t."eventId", t."contentHash" FROM jsonb_to_recordset(events) AS t("eventId" text, "contentHash" text, "seq" integer)
     WHERE t."eventId" IS NULL OR NOT EXISTS (SELECT 1 FROM "AuditEvent" e WHERE e."eventId" = t."eventId")
     ORDER BY t."seq"
  LOOP
    IF event."contentHash" IS NULL OR event."contentHash" !~ '^[0-9a-f]{64}$' THEN
      RAISE EXCEPTION 'INSERT on "AuditEvent" refused: no content hash';
    END IF;
    prev_hashes := prev_hashes || last_hash;
    last_id := last_id + 1;
    last_hash := encode(sha256(convert_to(last_hash || '|' || last_id::text || '|' || event."contentHash", 'UTF8')), 'hex');
    event_ids := event_ids || event."eventId";
    ids := ids || last_id;
    hashes := hashes || last_hash;
  END LOOP;
  IF cardinality(ids) = 0 THEN
    RETURN 0;
  END IF;
  PERFORM set_config('keyward.audit_append', 'on', true);
  INSERT INTO "AuditEvent" ("id", "eventId", "at", "requestId", "actor", "kind", "agentId", "jti", "grantId", "upstream",
    "environment", "method", "path", "decision", "reason", "status", "latencyMs", "details", "contentHash", "prevHash", "hash")
  SELECT l."id", t."eventId", t."at", t."requestId", t."actor", t."kind", t."agentId", t."jti", t."grantId", t."upstream",
    t."environment", t."method", t."path", t."decision", t."reason", t."status", t."latencyMs", t."details", t."contentHash",
    l."prevHash", l."hash"
  FROM unnest(ids, prev_hashes, hashes) WITH ORDINALITY AS l("id", "prevHash", "hash", "n")
  JOIN (
    SELECT row_number() OVER (ORDER BY r."seq") AS "n", r.*
      FROM jsonb_to_recordset(events) AS r("seq" integer, "eventId" text, "at" timestamp(3), "requestId" text, "actor" text,
        "kind" text, "agentId" text, "jti" text, "grantId" text, "upstream" text, "environment" text, "method" text,
        "path" text, "decision" text, "reason" text, "status" integer, "latencyMs" integer, "details" jsonb, "contentHash" text)
     WHERE r."eventId" IS NULL OR NOT EXISTS (SELECT 1 FROM "AuditEvent" e WHERE e."eventId" = r."eventId")
  ) AS t ON t."n" = l."n";
  PERFORM set_config('keyward.audit_append', 'off', true);
  UPDATE "AuditChainHead" SET "lastId" = last_id, "lastHash" = last_hash WHERE "id" = 1;
  RETURN cardinality(ids);
END $$;

-- Rows reach the log only through keyward_audit_append, which links them.
CREATE FUNCTION keyward_audit_refuse_direct_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'INSERT on "AuditEvent" refused: append through keyward_audit_append()';
END $$;

CREATE TRIGGER "AuditEvent_append_through_function" BEFORE INSERT ON "AuditEvent"
  FOR EACH ROW WHEN (current_setting('keyward.audit_append', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION keyward_audit_refuse_direct_insert();
