-- Issue 3: token service (signing-key rotation, token exchange, private_key_jwt, client-secret rotation).

-- AlterTable
ALTER TABLE "Agent" ADD COLUMN     "jwks" JSONB,
ADD COLUMN     "previousSecretExpiresAt" TIMESTAMP(3),
ADD COLUMN     "previousSecretHash" TEXT;

-- AlterTable
-- "kid" is added nullable, backfilled, then made required: before this migration Keyward never rotated
-- its signing key, so every token already issued was signed by the one (newest) key.
ALTER TABLE "IssuedToken" ADD COLUMN     "kid" TEXT,
ADD COLUMN     "parentJti" TEXT;
UPDATE "IssuedToken" SET "kid" = (SELECT "kid" FROM "SigningKey" ORDER BY "createdAt" DESC LIMIT 1) WHERE "kid" IS NULL;
ALTER TABLE "IssuedToken" ALTER COLUMN "kid" SET NOT NULL;

-- CreateTable
CREATE TABLE "UsedClientAssertion" (
    "clientId" TEXT NOT NULL,
    "jti" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "UsedClientAssertion_pkey" PRIMARY KEY ("clientId","jti")
);

-- CreateIndex
CREATE INDEX "UsedClientAssertion_expiresAt_idx" ON "UsedClientAssertion"("expiresAt");

-- CreateIndex
CREATE INDEX "IssuedToken_kid_expiresAt_idx" ON "IssuedToken"("kid", "expiresAt");
