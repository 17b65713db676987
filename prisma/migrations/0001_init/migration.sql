-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "AdminKey" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "keyHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "AdminKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Upstream" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "baseUrl" TEXT NOT NULL,
    "environment" TEXT NOT NULL,
    "authConfig" JSONB NOT NULL,
    "secretCiphertext" TEXT NOT NULL,
    "secretKeyId" TEXT NOT NULL,
    "secretUpdatedAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Upstream_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Agent" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "clientId" TEXT NOT NULL,
    "secretHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Agent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Grant" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "upstreamId" TEXT NOT NULL,
    "methods" TEXT[],
    "paths" TEXT[],
    "deny" JSONB NOT NULL,
    "maxTtlSeconds" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Grant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "GrantAgent" (
    "grantId" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,

    CONSTRAINT "GrantAgent_pkey" PRIMARY KEY ("grantId","agentId")
);

-- CreateTable
CREATE TABLE "SigningKey" (
    "kid" TEXT NOT NULL,
    "alg" TEXT NOT NULL,
    "publicJwk" JSONB NOT NULL,
    "privateCiphertext" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "retiredAt" TIMESTAMP(3),

    CONSTRAINT "SigningKey_pkey" PRIMARY KEY ("kid")
);

-- CreateTable
CREATE TABLE "IssuedToken" (
    "jti" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "grantId" TEXT NOT NULL,
    "upstream" TEXT NOT NULL,
    "methods" TEXT[],
    "paths" TEXT[],
    "issuedAt" TIMESTAMP(3) NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "IssuedToken_pkey" PRIMARY KEY ("jti")
);

-- CreateTable
CREATE TABLE "Revocation" (
    "id" TEXT NOT NULL,
    "selector" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "reason" TEXT,
    "actor" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMP(3),

    CONSTRAINT "Revocation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditEvent" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "requestId" TEXT,
    "actor" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "agentId" TEXT,
    "jti" TEXT,
    "grantId" TEXT,
    "upstream" TEXT,
    "method" TEXT,
    "path" TEXT,
    "decision" TEXT,
    "reason" TEXT,
    "status" INTEGER,
    "latencyMs" INTEGER,
    "details" JSONB,

    CONSTRAINT "AuditEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "AdminKey_keyHash_key" ON "AdminKey"("keyHash");

-- CreateIndex
CREATE UNIQUE INDEX "Upstream_name_key" ON "Upstream"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Agent_name_key" ON "Agent"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Agent_clientId_key" ON "Agent"("clientId");

-- CreateIndex
CREATE UNIQUE INDEX "Grant_name_key" ON "Grant"("name");

-- CreateIndex
CREATE INDEX "GrantAgent_agentId_idx" ON "GrantAgent"("agentId");

-- CreateIndex
CREATE INDEX "IssuedToken_agentId_idx" ON "IssuedToken"("agentId");

-- CreateIndex
CREATE INDEX "IssuedToken_grantId_idx" ON "IssuedToken"("grantId");

-- CreateIndex
CREATE INDEX "IssuedToken_expiresAt_idx" ON "IssuedToken"("expiresAt");

-- CreateIndex
CREATE INDEX "Revocation_createdAt_idx" ON "Revocation"("createdAt");

-- CreateIndex
CREATE INDEX "AuditEvent_agentId_id_idx" ON "AuditEvent"("agentId", "id");

-- CreateIndex
CREATE INDEX "AuditEvent_upstream_id_idx" ON "AuditEvent"("upstream", "id");

-- CreateIndex
CREATE INDEX "AuditEvent_at_idx" ON "AuditEvent"("at");

-- AddForeignKey
ALTER TABLE "Grant" ADD CONSTRAINT "Grant_upstreamId_fkey" FOREIGN KEY ("upstreamId") REFERENCES "Upstream"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GrantAgent" ADD CONSTRAINT "GrantAgent_grantId_fkey" FOREIGN KEY ("grantId") REFERENCES "Grant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GrantAgent" ADD CONSTRAINT "GrantAgent_agentId_fkey" FOREIGN KEY ("agentId") REFERENCES "Agent"("id") ON DELETE CASCADE ON UPDATE CASCADE;

