-- HTTP calls under a grant that need a token a human approved (src/policy/decide.ts), as GraphQL and
-- JSON-RPC allow rules can say with requiresApproval.
ALTER TABLE "Grant" ADD COLUMN "requiresApprovalFor" JSONB NOT NULL DEFAULT '[]';
