-- Issue 4: policy depth (protocols and protection presets, environments, operation rules, budgets, approvals).

-- AlterTable
ALTER TABLE "Upstream" ADD COLUMN     "presets" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "protocol" TEXT NOT NULL DEFAULT 'http';

-- AlterTable
ALTER TABLE "Grant" ADD COLUMN     "allowProtected" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "budgets" JSONB,
ADD COLUMN     "destructive" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN     "environments" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "graphql" JSONB,
ADD COLUMN     "jsonrpc" JSONB,
ADD COLUMN     "requiresApproval" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "Environment" (
    "name" TEXT NOT NULL,
    "requiresApproval" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Environment_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "Approval" (
    "id" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "grantId" TEXT NOT NULL,
    "upstream" TEXT NOT NULL,
    "environment" TEXT NOT NULL,
    "capabilities" JSONB NOT NULL,
    "reasons" TEXT[],
    "protectedOperations" TEXT[],
    "status" TEXT NOT NULL,
    "requestedBy" TEXT NOT NULL,
    "credentialHolders" TEXT[],
    "decidedBy" TEXT,
    "decidedAt" TIMESTAMP(3),
    "note" TEXT,
    "issuedJti" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Approval_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BudgetCounter" (
    "key" TEXT NOT NULL,
    "window" BIGINT NOT NULL,
    "used" INTEGER NOT NULL,
    "capacity" INTEGER NOT NULL,
    "expiresAt" TIMESTAMP(3),

    CONSTRAINT "BudgetCounter_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE UNIQUE INDEX "Approval_issuedJti_key" ON "Approval"("issuedJti");

-- CreateIndex
CREATE INDEX "Approval_status_createdAt_idx" ON "Approval"("status", "createdAt");

-- CreateIndex
CREATE INDEX "Approval_agentId_idx" ON "Approval"("agentId");

-- CreateIndex
CREATE INDEX "BudgetCounter_expiresAt_idx" ON "BudgetCounter"("expiresAt");


-- Existing grants covered their upstream's environment implicitly: say so explicitly.
UPDATE "Grant" SET "environments" = ARRAY[u."environment"] FROM "Upstream" u WHERE u."id" = "Grant"."upstreamId";
