import { describe, expect, it } from "vitest";
import { RevocationState, type RevocationRecord, type TokenSelector } from "../../../src/revocation/state.js";

const T = 1_900_000_000; // a whole second
const at = (seconds: number, ms = 0) => new Date(seconds * 1000 + ms);

const token = (overrides: Partial<{ jti: string; agentId: string; grantId: string; upstream: string; issuedAt: number }> = {}) => ({
  jti: "jti-1",
  agentId: "agent-1",
  grantId: "grant-1",
  upstream: "api",
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

describe("RevocationState: agent / grant / upstream / all selectors compare with iat in whole seconds", () => {
  // revokedAt = T + 0.999 s: floors to T
  const revokedAt = at(T, 999);
  const selectors: [TokenSelector, string, string, Partial<ReturnType<typeof token>>][] = [
    ["agent", "agent-1", "agent's tokens revoked", { agentId: "agent-2" }],
    ["grant", "grant-1", "grant's tokens revoked", { grantId: "grant-2" }],
    ["upstream", "api", "upstream's tokens revoked", { upstream: "other-api" }],
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

describe("RevocationState: environment (the upstream's, checked separately)", () => {
  const state = RevocationState.from([{ selector: "environment", value: "production", revokedAt: at(T) }]);
  it.each([
    ["that environment, issued before", "production", T - 1, "environment's tokens revoked"],
    ["that environment, same second", "production", T, "environment's tokens revoked"],
    ["that environment, issued after", "production", T + 1, null],
    ["another environment", "staging", T - 1, null],
  ])("%s → %s", (_name, environment, issuedAt, expected) => {
    expect(state.reasonEnvironmentRevoked(environment, { issuedAt })).toBe(expected);
  });

  it("does not revoke through reasonRevoked, which knows nothing of environments", () => {
    expect(state.reasonRevoked(token({ issuedAt: T - 1 }))).toBeNull();
  });
});

describe("RevocationState: issued_before", () => {
  const issuedBefore = (value: string, createdAt = at(T + 3600)): RevocationRecord => ({
    selector: "issued_before",
    value,
    revokedAt: createdAt,
  });
  const reason = "tokens issued before a cutoff revoked";

  it.each([
    ["long before the cutoff", T - 3600, reason],
    ["in the cutoff's second (safe side)", T, reason],
    ["after the cutoff, though before the revocation was made", T + 1, null],
  ])("a token issued %s → %s", (_name, issuedAt, expected) => {
    const state = RevocationState.from([issuedBefore(at(T, 500).toISOString())]);
    expect(state.reasonRevoked(token({ issuedAt }))).toBe(expected);
  });

  it("keeps the latest cutoff whatever the order", () => {
    const records = [issuedBefore(at(T - 100).toISOString()), issuedBefore(at(T).toISOString())];
    for (const order of [records, [...records].reverse()]) {
      expect(RevocationState.from(order).reasonRevoked(token({ issuedAt: T }))).toBe(reason);
    }
  });

  it("a row with a later cutoff than its creation (written around the API) cuts off at its creation", () => {
    const state = RevocationState.from([issuedBefore(at(T + 10_000).toISOString(), at(T))]);
    expect(state.reasonRevoked(token({ issuedAt: T }))).toBe(reason);
    expect(state.reasonRevoked(token({ issuedAt: T + 1 }))).toBeNull();
  });

  it("an unreadable cutoff fails closed to the creation time", () => {
    const state = RevocationState.from([issuedBefore("not a time", at(T))]);
    expect(state.reasonRevoked(token({ issuedAt: T }))).toBe(reason);
  });
});

describe("RevocationState: kill switch", () => {
  it("is engaged while any engagement is not lifted, and replaying changes in order ends where they did", () => {
    const state = new RevocationState();
    expect(state.killSwitchEngaged).toBe(false);
    state.add({ selector: "kill_switch", id: "k1", lifted: false });
    state.add({ selector: "kill_switch", id: "k2", lifted: false });
    state.add({ selector: "kill_switch", id: "k1", lifted: true });
    expect(state.killSwitchEngaged).toBe(true);
    state.add({ selector: "kill_switch", id: "k2", lifted: true });
    expect(state.killSwitchEngaged).toBe(false);
    // A replay of the same changes (as after a full load) changes nothing.
    state.add({ selector: "kill_switch", id: "k2", lifted: true });
    expect(state.killSwitchEngaged).toBe(false);
  });

  it("does not show as a token revocation: the service answers it separately", () => {
    const state = RevocationState.from([{ selector: "kill_switch", id: "k1", lifted: false }]);
    expect(state.reasonRevoked(token())).toBeNull();
  });
});

describe("RevocationState: memory stays bounded", () => {
  it("forgets a jti once its token has expired, and only then", () => {
    const state = RevocationState.from([
      { selector: "jti", value: "short", revokedAt: at(T), expiresAt: at(T + 60) },
      { selector: "jti", value: "long", revokedAt: at(T), expiresAt: at(T + 3600) },
    ]);
    state.forgetExpired(at(T + 59).getTime());
    expect(state.size).toBe(2);
    state.forgetExpired(at(T + 60).getTime());
    expect(state.size).toBe(1);
    expect(state.reasonRevoked(token({ jti: "short" }))).toBeNull();
    expect(state.reasonRevoked(token({ jti: "long" }))).toBe("token revoked");
  });

  it("keeps one cutoff per selector and value however many revocations repeat it", () => {
    const state = new RevocationState();
    for (let i = 0; i < 1000; i++) state.add({ selector: "agent", value: "agent-1", revokedAt: at(T + i) });
    expect(state.size).toBe(1);
  });
});
