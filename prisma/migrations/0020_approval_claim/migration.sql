-- When an approved request's collection was claimed (status "issuing"). A broker that claimed it and died
-- before the token was minted left it "issuing" until it expired, for a human to approve again: a claim
-- older than the lease (src/approvals/approvals.ts) may now be taken over by the agent's next poll.
ALTER TABLE "Approval" ADD COLUMN "claimedAt" TIMESTAMP(3);
