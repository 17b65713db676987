-- The secrets of a credential an upstream's replaced were remembered for redaction in the memory of the
-- replica that had used it: lost at a restart, unknown to the other replicas. Kept here instead, encrypted
-- under the master key, written with the change that replaced the credential (so the upstream's own
-- notification announces it) and deleted once its overlap has ended (src/upstreams/retired-credentials.ts).
CREATE TABLE "RetiredUpstreamCredential" (
    "id" TEXT NOT NULL,
    "upstreamId" TEXT NOT NULL,
    "secretsCiphertext" TEXT NOT NULL,
    "secretsKeyId" TEXT NOT NULL,
    "retiredAt" TIMESTAMP(3) NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "RetiredUpstreamCredential_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "RetiredUpstreamCredential_upstreamId_expiresAt_idx" ON "RetiredUpstreamCredential"("upstreamId", "expiresAt");
CREATE INDEX "RetiredUpstreamCredential_expiresAt_idx" ON "RetiredUpstreamCredential"("expiresAt");

ALTER TABLE "RetiredUpstreamCredential" ADD CONSTRAINT "RetiredUpstreamCredential_upstreamId_fkey" FOREIGN KEY ("upstreamId") REFERENCES "Upstream"("id") ON DELETE CASCADE ON UPDATE CASCADE;
