-- Issue 14: token issuance reads the agent from memory, like the proxy reads grants and upstreams. Agents are
-- cached by clientId (the key a token request presents); every change is announced on the channel that keeps
-- the other caches current (migration 0005), so a rotated secret, new keys or a deleted agent reach every
-- replica in commit order.
CREATE TRIGGER "Agent_notify" AFTER INSERT OR UPDATE OR DELETE ON "Agent"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('Agent', 'clientId');
CREATE TRIGGER "Agent_notify_truncate" AFTER TRUNCATE ON "Agent"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_cached_row_notify('Agent', 'clientId');
