-- Issue 16: one token issuer per deployment. The first broker to start records the issuer (its
-- KEYWARD_ISSUER, else its own http://HOST:PORT) and every replica uses it, so a token from one replica
-- is valid on all (src/tokens/deployment-issuer.ts). A single row, id 1.
CREATE TABLE "DeploymentIssuer" (
    "id" INTEGER NOT NULL,
    "issuer" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "recordedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "DeploymentIssuer_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "DeploymentIssuer_single_row" CHECK ("id" = 1)
);
