-- Which audit chain a broker's spool writes for (src/audit/spool.ts): a spool left by a broker of another
-- database (the same data dir used with another DATABASE_URL or schema) is never adopted into this one.
-- Random per database; a restore keeps the new database's own.
ALTER TABLE "AuditChainHead" ADD COLUMN "chainId" TEXT NOT NULL DEFAULT (gen_random_uuid())::text;
