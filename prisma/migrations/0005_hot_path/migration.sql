-- Issue 7: the hot path. Written by hand: no schema change, only what Prisma's schema language cannot express.

-- Announces every change to a row that a replica may hold in memory (src/revocation/row-cache.ts) on the
-- revocation channel, so it reaches every replica in commit order with the revocations and the pings that
-- prove a replica current (src/revocation/freshness.ts). The payload names the row as its cache does:
-- TG_ARGV[0] is the cache's table, TG_ARGV[1] the column holding its key; a key of null (TRUNCATE) means
-- every row. An update announces the old key and the new one; PostgreSQL sends a transaction's identical
-- notifications once.
CREATE FUNCTION keyward_cached_row_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('keyward_revocation', json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_ARGV[0], 'key', NULL)::text);
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('keyward_revocation', json_build_object(
      'schema', TG_TABLE_SCHEMA, 'table', TG_ARGV[0], 'key', to_jsonb(OLD) ->> TG_ARGV[1])::text);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('keyward_revocation', json_build_object(
      'schema', TG_TABLE_SCHEMA, 'table', TG_ARGV[0], 'key', to_jsonb(NEW) ->> TG_ARGV[1])::text);
  END IF;
  RETURN NULL;
END $$;

-- Grants are cached by id, with their agents: a GrantAgent change is a change to its grant.
CREATE TRIGGER "Grant_notify" AFTER INSERT OR UPDATE OR DELETE ON "Grant"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('Grant', 'id');
CREATE TRIGGER "Grant_notify_truncate" AFTER TRUNCATE ON "Grant"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_cached_row_notify('Grant', 'id');
CREATE TRIGGER "GrantAgent_notify" AFTER INSERT OR UPDATE OR DELETE ON "GrantAgent"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('Grant', 'grantId');
CREATE TRIGGER "GrantAgent_notify_truncate" AFTER TRUNCATE ON "GrantAgent"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_cached_row_notify('Grant', 'grantId');

-- Upstreams and environments are cached by name.
CREATE TRIGGER "Upstream_notify" AFTER INSERT OR UPDATE OR DELETE ON "Upstream"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('Upstream', 'name');
CREATE TRIGGER "Upstream_notify_truncate" AFTER TRUNCATE ON "Upstream"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_cached_row_notify('Upstream', 'name');
CREATE TRIGGER "Environment_notify" AFTER INSERT OR UPDATE OR DELETE ON "Environment"
  FOR EACH ROW EXECUTE FUNCTION keyward_cached_row_notify('Environment', 'name');
CREATE TRIGGER "Environment_notify_truncate" AFTER TRUNCATE ON "Environment"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_cached_row_notify('Environment', 'name');
