import { describe, expect, it } from "vitest";
import { RevocationState, type RevocationRecord } from "../../../src/revocation/state.js";

const T = 1_900_000_000; // a whole second
const at = (seconds: number, ms = 0) => new Date(seconds * 1000 + ms);

const token = (overrides: Partial<{ jti: string; agentId: string; grantId: string; issuedAt: number }> = {}) => ({
  jti: "jti-1",
  agentId: "agent-1",
  grantId: "grant-1",
  issuedAt: T,
  ...overrides,
});

describe("RevocationState: nothing revoked", () => {
  it("an empty state revokes nothing", () => {
    expect(new RevocationState().reasonRevoked(token())).toBeNull();
    expect(RevocationState.from([]).reasonRevoked(token())).toBeNull();
  });
});

describe("RevocationState: jti", () => {
  const state = RevocationState.from([{ selector: "jti", value: "jti-1", revokedAt: at(T - 1000) }]);
  const cases: [string, ReturnType<typeof token>, string | null][] = [
    ["that token", token(), "token revoked"],
    ["that token, whenever it was issued", token({ issuedAt: T + 10_000 }), "token revoked"],
    ["another token of the same agent and grant", token({ jti: "jti-2" }), null],
    ["a jti differing only in case", token({ jti: "JTI-1" }), null],
    ["a jti that merely contains it", token({ jti: "jti-10" }), null],
  ];
  it.each(cases)("%s → %s", (_name, t, expected) => {
    expect(state.reasonRevoked(t)).toBe(expected);
  });
});

describe("RevocationState: agent / grant / all selectors compare with iat in whole seconds", () => {
  // revokedAt = T + 0.999 s: floors to T
  const revokedAt = at(T, 999);
  const selectors: [RevocationRecord["selector"], string, string, Partial<ReturnType<typeof token>>][] = [
    ["agent", "agent-1", "agent's tokens revoked", { agentId: "agent-2" }],
    ["grant", "grant-1", "grant's tokens revoked", { grantId: "grant-2" }],
    ["all", "*", "all tokens revoked", {}],
  ];

  describe.each(selectors)("%s", (selector, value, reason, unrelated) => {
    const state = RevocationState.from([{ selector, value, revokedAt }]);
    const cases: [string, number, string | null][] = [
      ["issued long before", T - 3600, reason],
      ["issued one second before", T - 1, reason],
      ["issued in the same second (safe side of the rounding)", T, reason],
      ["issued one second after", T + 1, null],
      ["issued long after", T + 3600, null],
    ];
    it.each(cases)("%s → %s", (_name, issuedAt, expected) => {
      expect(state.reasonRevoked(token({ issuedAt }))).toBe(expected);
    });

    if (selector !== "all") {
      it("does not touch tokens of another " + selector, () => {
        expect(state.reasonRevoked(token({ ...unrelated, issuedAt: T - 3600 }))).toBeNull();
      });
    }
  });

  it("a revocation at the very start of a second still kills tokens from that second", () => {
    const state = RevocationState.from([{ selector: "agent", value: "agent-1", revokedAt: at(T, 0) }]);
    expect(state.reasonRevoked(token({ issuedAt: T }))).toBe("agent's tokens revoked");
    expect(state.reasonRevoked(token({ issuedAt: T + 1 }))).toBeNull();
  });

  it("an all-revocation is keyed on the value *", () => {
    const state = RevocationState.from([{ selector: "all", value: "*", revokedAt: at(T) }]);
    expect(state.reasonRevoked(token({ agentId: "x", grantId: "y", jti: "z", issuedAt: T }))).toBe("all tokens revoked");
  });

  it("selectors do not bleed into each other: agent value equal to a grant id", () => {
    const state = RevocationState.from([{ selector: "agent", value: "grant-1", revokedAt: at(T) }]);
    expect(state.reasonRevoked(token({ agentId: "agent-1", grantId: "grant-1" }))).toBeNull();
  });

  it("a jti revocation does not act as an agent or grant revocation", () => {
    const state = RevocationState.from([{ selector: "jti", value: "agent-1", revokedAt: at(T) }]);
    expect(state.reasonRevoked(token())).toBeNull();
  });
});

describe("RevocationState: several records", () => {
  it("keeps the latest revocation per selector whatever the order records arrive in", () => {
    const records: RevocationRecord[] = [
      { selector: "agent", value: "agent-1", revokedAt: at(T + 100) },
      { selector: "agent", value: "agent-1", revokedAt: at(T) },
    ];
    for (const order of [records, [...records].reverse()]) {
      const state = RevocationState.from(order);
      expect(state.reasonRevoked(token({ issuedAt: T + 50 }))).toBe("agent's tokens revoked");
      expect(state.reasonRevoked(token({ issuedAt: T + 100 }))).toBe("agent's tokens revoked");
      expect(state.reasonRevoked(token({ issuedAt: T + 101 }))).toBeNull();
    }
  });

  it("add() after construction takes effect", () => {
    const state = new RevocationState();
    expect(state.reasonRevoked(token())).toBeNull();
    state.add({ selector: "grant", value: "grant-1", revokedAt: at(T) });
    expect(state.reasonRevoked(token())).toBe("grant's tokens revoked");
    state.add({ selector: "jti", value: "jti-9", revokedAt: at(T) });
    expect(state.reasonRevoked(token({ jti: "jti-9", grantId: "grant-2" }))).toBe("token revoked");
  });

  it("reports the most specific reason first: jti, then agent, grant, all", () => {
    const state = RevocationState.from([
      { selector: "all", value: "*", revokedAt: at(T) },
      { selector: "grant", value: "grant-1", revokedAt: at(T) },
      { selector: "agent", value: "agent-1", revokedAt: at(T) },
      { selector: "jti", value: "jti-1", revokedAt: at(T) },
    ]);
    expect(state.reasonRevoked(token())).toBe("token revoked");
    expect(state.reasonRevoked(token({ jti: "jti-2" }))).toBe("agent's tokens revoked");
    expect(state.reasonRevoked(token({ jti: "jti-2", agentId: "agent-2" }))).toBe("grant's tokens revoked");
    expect(state.reasonRevoked(token({ jti: "jti-2", agentId: "agent-2", grantId: "grant-2" }))).toBe("all tokens revoked");
    expect(state.reasonRevoked(token({ jti: "jti-2", agentId: "agent-2", grantId: "grant-2", issuedAt: T + 1 }))).toBeNull();
  });

  it("an older agent revocation does not hide a newer grant revocation", () => {
    const state = RevocationState.from([
      { selector: "agent", value: "agent-1", revokedAt: at(T - 100) },
      { selector: "grant", value: "grant-1", revokedAt: at(T) },
    ]);
    expect(state.reasonRevoked(token({ issuedAt: T - 50 }))).toBe("grant's tokens revoked");
  });
});
