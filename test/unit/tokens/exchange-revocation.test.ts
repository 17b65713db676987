import { describe, expect, it } from "vitest";
import { RevocationState } from "../../../src/revocation/state.js";

// Revocation of exchanged tokens (src/tokens/tokens.ts): a child dies with any of its ancestors.
const T = 1_900_000_000;
const at = (seconds: number) => new Date(seconds * 1000);
const root = { jti: "root", agentId: "agent-1", grantId: "grant-1", upstream: "api", issuedAt: T, ancestors: [], rootIssuedAt: T };
const child = { ...root, jti: "child", issuedAt: T + 100, ancestors: ["root"], rootIssuedAt: T };
const grandchild = { ...root, jti: "grandchild", issuedAt: T + 200, ancestors: ["root", "child"], rootIssuedAt: T };

describe("RevocationState and exchanged tokens", () => {
  it("revoking a token revokes every descendant, not its ancestors or siblings", () => {
    const state = RevocationState.from([{ selector: "jti", value: "child", revokedAt: at(T + 150) }]);
    expect(state.reasonRevoked(root)).toBeNull();
    expect(state.reasonRevoked(child)).toBe("token revoked");
    expect(state.reasonRevoked(grandchild)).toBe("parent token revoked");
    expect(state.reasonRevoked({ ...child, jti: "sibling" })).toBeNull();
  });

  it("a selector revocation dates a descendant by its root: one issued after the cutoff from an older root is revoked", () => {
    const state = RevocationState.from([{ selector: "agent", value: "agent-1", revokedAt: at(T + 50) }]);
    // The child was issued after the revocation (e.g. on a replica that had not heard of it yet)...
    expect(child.issuedAt).toBeGreaterThan(T + 50);
    // ...but descends from a token the revocation covers.
    expect(state.reasonRevoked(child)).toBe("agent's tokens revoked");
    expect(state.reasonRevoked(grandchild)).toBe("agent's tokens revoked");
    // A new chain rooted after the cutoff is not.
    const fresh = { ...child, jti: "fresh", ancestors: ["new-root"], rootIssuedAt: T + 60 };
    expect(state.reasonRevoked(fresh)).toBeNull();
  });

  it("tokens without lineage are judged as before", () => {
    const state = RevocationState.from([{ selector: "all", value: "*", revokedAt: at(T) }]);
    expect(state.reasonRevoked({ jti: "plain", agentId: "a", grantId: "g", upstream: "api", issuedAt: T })).toBe("all tokens revoked");
    expect(state.reasonRevoked({ jti: "plain", agentId: "a", grantId: "g", upstream: "api", issuedAt: T + 1 })).toBeNull();
  });
});
