-- Response redaction rules of a grant (src/redaction/rules.ts): JSON values, GraphQL fields and named
-- detectors to replace in the upstream's answers, and the preset redactions it opts out of.
ALTER TABLE "Grant" ADD COLUMN "redact" JSONB NOT NULL DEFAULT '[]';
ALTER TABLE "Grant" ADD COLUMN "redactOptOut" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
