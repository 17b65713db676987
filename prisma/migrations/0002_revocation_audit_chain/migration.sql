-- AlterTable
ALTER TABLE "Revocation" ADD COLUMN     "liftedAt" TIMESTAMP(3),
ADD COLUMN     "liftedBy" TEXT;

-- AlterTable
ALTER TABLE "AuditEvent" ADD COLUMN     "contentHash" TEXT,
ADD COLUMN     "environment" TEXT,
ADD COLUMN     "hash" TEXT,
ADD COLUMN     "prevHash" TEXT;

-- CreateTable
CREATE TABLE "AuditChainHead" (
    "id" INTEGER NOT NULL,
    "lastId" BIGINT NOT NULL,
    "lastHash" TEXT NOT NULL,

    CONSTRAINT "AuditChainHead_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditCheckpoint" (
    "id" SERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "actor" TEXT NOT NULL,
    "throughId" BIGINT NOT NULL,
    "throughHash" TEXT NOT NULL,
    "prunedEvents" INTEGER NOT NULL,
    "keyId" TEXT NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "signature" TEXT NOT NULL,

    CONSTRAINT "AuditCheckpoint_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditSinkCursor" (
    "id" INTEGER NOT NULL,
    "lastId" BIGINT NOT NULL,
    "leaseOwner" TEXT,
    "leaseUntil" TIMESTAMP(3),

    CONSTRAINT "AuditSinkCursor_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Revocation_expiresAt_idx" ON "Revocation"("expiresAt");

-- CreateIndex
CREATE INDEX "AuditEvent_grantId_id_idx" ON "AuditEvent"("grantId", "id");

-- CreateIndex
CREATE INDEX "AuditEvent_jti_idx" ON "AuditEvent"("jti");


-- Written by hand below: what Prisma's schema language cannot express. See README "Audit log integrity".

-- The chain starts after any events written before this migration; their hash columns stay null.
INSERT INTO "AuditChainHead" ("id", "lastId", "lastHash")
SELECT 1, COALESCE(MAX("id"), 0), repeat('0', 64) FROM "AuditEvent";

INSERT INTO "AuditSinkCursor" ("id", "lastId") VALUES (1, 0);

-- Links every new event into the hash chain: the next id, the previous hash, and
-- hash = sha256(prevHash | id | contentHash). The row lock on the chain head is held until the inserting
-- transaction ends, so appends from every replica happen one at a time: ids are gapless, commits come in
-- id order, and the chain is total. contentHash is computed by the writer (src/audit/chain.ts).
CREATE FUNCTION keyward_audit_link() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  head RECORD;
BEGIN
  IF NEW."contentHash" IS NULL OR NEW."contentHash" !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'INSERT on "AuditEvent" refused: no content hash';
  END IF;
  SELECT "lastId", "lastHash" INTO STRICT head FROM "AuditChainHead" WHERE "id" = 1 FOR UPDATE;
  NEW."id" := head."lastId" + 1;
  NEW."prevHash" := head."lastHash";
  NEW."hash" := encode(sha256(convert_to(NEW."prevHash" || '|' || NEW."id"::text || '|' || NEW."contentHash", 'UTF8')), 'hex');
  UPDATE "AuditChainHead" SET "lastId" = NEW."id", "lastHash" = NEW."hash" WHERE "id" = 1;
  RETURN NEW;
END $$;

CREATE TRIGGER "AuditEvent_link" BEFORE INSERT ON "AuditEvent"
  FOR EACH ROW EXECUTE FUNCTION keyward_audit_link();

-- Append-only tables refuse every change but INSERT.
CREATE FUNCTION keyward_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on "%" refused: the table is append-only', TG_OP, TG_TABLE_NAME;
END $$;

-- Pruning (src/audit/retention.ts) first writes a checkpoint holding the last pruned event's hash; only
-- events that a checkpoint covers can be deleted.
CREATE FUNCTION keyward_audit_prune_only() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD."id" <= (SELECT COALESCE(MAX("throughId"), 0) FROM "AuditCheckpoint") THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'DELETE on "AuditEvent" refused: event % is not covered by a checkpoint', OLD."id";
END $$;

CREATE TRIGGER "AuditEvent_append_only" BEFORE UPDATE OR TRUNCATE ON "AuditEvent"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_append_only();
CREATE TRIGGER "AuditEvent_prune_only" BEFORE DELETE ON "AuditEvent"
  FOR EACH ROW EXECUTE FUNCTION keyward_audit_prune_only();
CREATE TRIGGER "AuditCheckpoint_append_only" BEFORE UPDATE OR DELETE OR TRUNCATE ON "AuditCheckpoint"
  FOR EACH STATEMENT EXECUTE FUNCTION keyward_append_only();

-- Announces every revocation change to every replica (src/revocation/service.ts listens). The schema is in
-- the payload because a channel spans the database, which several Keyward schemas may share.
CREATE FUNCTION keyward_revocation_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('keyward_revocation', json_build_object(
    'schema', TG_TABLE_SCHEMA,
    'id', NEW."id",
    'selector', NEW."selector",
    'value', NEW."value",
    'createdAtMs', floor(extract(epoch FROM NEW."createdAt") * 1000),
    'expiresAtMs', floor(extract(epoch FROM NEW."expiresAt") * 1000),
    'lifted', NEW."liftedAt" IS NOT NULL
  )::text);
  RETURN NULL;
END $$;

CREATE TRIGGER "Revocation_notify" AFTER INSERT OR UPDATE ON "Revocation"
  FOR EACH ROW EXECUTE FUNCTION keyward_revocation_notify();
