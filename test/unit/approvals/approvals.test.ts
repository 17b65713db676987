import type { PrismaClient } from "@prisma/client";
import { describe, expect, it } from "vitest";
import { Approvals, approvalReasons, statusOf } from "../../../src/approvals/approvals.js";
import { ERROR_CODES } from "../../../src/sdk/codes.js";

const grant = { requiresApproval: false, allowProtected: [], requiresApprovalFor: [], graphql: null, jsonrpc: null };
const staging = { name: "staging", requiresApproval: false };

describe("approvalReasons", () => {
  it("none for an ordinary grant", () => {
    expect(approvalReasons(grant, staging)).toEqual([]);
  });
  it.each([
    [{ ...grant, requiresApproval: true }, staging, ["the grant requires approval"]],
    [grant, { name: "production", requiresApproval: true }, ["environment production requires approval"]],
    [{ ...grant, allowProtected: ["railway.volumeDelete"] }, staging, ["the grant names protected operations: railway.volumeDelete"]],
    [
      { ...grant, graphql: { allow: [{ operation: "query" as const }, { field: "rollback*", requiresApproval: true }], deny: [] } },
      staging,
      ["graphql.allow[1] requires approval"],
    ],
    [{ ...grant, jsonrpc: { allow: [{ method: "a", requiresApproval: true }], deny: [] } }, staging, ["jsonrpc.allow[0] requires approval"]],
    [
      { ...grant, requiresApprovalFor: [{ method: "DELETE" as const }, { path: "/v1/volumes/**" }] },
      staging,
      ["requiresApprovalFor[0] (DELETE any path) requires approval", "requiresApprovalFor[1] (any method /v1/volumes/**) requires approval"],
    ],
    [
      { ...grant, requiresApproval: true, allowProtected: ["render.diskDelete"] },
      { name: "production", requiresApproval: true },
      ["the grant requires approval", "environment production requires approval", "the grant names protected operations: render.diskDelete"],
    ],
  ])("%j in %j", (g, environment, reasons) => {
    expect(approvalReasons(g, environment)).toEqual(reasons);
  });
});

describe("statusOf", () => {
  const now = new Date("2030-01-01T00:00:00Z");
  const later = new Date("2030-01-01T01:00:00Z");
  const earlier = new Date("2029-12-31T23:00:00Z");
  it.each([
    ["pending", later, "pending"],
    ["pending", earlier, "expired"],
    ["pending", now, "expired"],
    ["approved", later, "approved"],
    ["approved", earlier, "expired"],
    ["issuing", earlier, "expired"],
    ["denied", earlier, "denied"],
    ["issued", earlier, "issued"],
  ] as const)("%s, expiring %s → %s", (status, expiresAt, expected) => {
    expect(statusOf({ status, expiresAt }, now)).toBe(expected);
  });
});

describe("assertClaimed", () => {
  // The gate mints a token for an approval only while that approval is being collected by this agent for
  // this grant; anything else (decided again, collected by a concurrent request, another grant) is refused.
  const approvalsWith = (row: object | null, agentHolders: string[] = ["admin-key:registrar"]) =>
    new Approvals(
      {
        approval: { findUnique: async () => row },
        agent: { findUnique: async () => ({ credentialHolders: agentHolders }) },
        revocation: { findMany: async () => [] },
        adminKey: { findUnique: async () => ({ revokedAt: null }) },
      } as unknown as PrismaClient,
      { ttlSeconds: 60, notifier: null },
    );
  const target = { upstream: "hosting-staging", environment: "staging" };
  const claimed = { status: "issuing", agentId: "agent-1", grantId: "grant-1", ...target, decidedBy: "admin-key:on-call", decidedAt: new Date(), createdAt: new Date(), credentialHolders: ["admin-key:registrar"] };

  it("passes for the approval this agent is collecting for this grant", async () => {
    await expect(approvalsWith(claimed).assertClaimed("approval-1", "agent-1", "grant-1", target)).resolves.toBeUndefined();
  });

  it.each([
    ["no such approval", null],
    ["one already issued", { ...claimed, status: "issued" }],
    ["one still pending", { ...claimed, status: "pending" }],
    ["another agent's", { ...claimed, agentId: "agent-2" }],
    ["another grant's", { ...claimed, grantId: "grant-2" }],
    ["one for the upstream the grant had before", { ...claimed, upstream: "hosting-old" }],
    ["one for the environment the upstream had before", { ...claimed, environment: "dev" }],
  ])("refuses %s with approval_invalid", async (_name, row) => {
    await expect(approvalsWith(row).assertClaimed("approval-1", "agent-1", "grant-1", target)).rejects.toMatchObject({
      code: "approval_invalid",
      status: ERROR_CODES.approval_invalid.status,
    });
  });

  it("refuses one decided by a key that has held the agent's credentials since, with self_approval", async () => {
    await expect(approvalsWith(claimed, ["admin-key:registrar", "admin-key:on-call"]).assertClaimed("approval-1", "agent-1", "grant-1", target)).rejects.toMatchObject({
      code: "self_approval",
    });
  });
});
