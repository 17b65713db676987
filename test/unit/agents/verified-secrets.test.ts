import { describe, expect, it } from "vitest";
import { VerifiedSecrets } from "../../../src/agents/verified-secrets.js";

const T = new Date(1_900_000_000_000);
const at = (ms: number) => new Date(T.getTime() + ms);
const current = { secretHash: "h1", previousSecretHash: null, previousSecretExpiresAt: null };

describe("VerifiedSecrets", () => {
  it("accepts a remembered secret while the agent's current hash is the one it matched, for the TTL only", () => {
    const v = new VerifiedSecrets({ ttlMs: 300_000, maxEntries: 10 });
    expect(v.accepted("kwc_a", "s1", current, T)).toBe(false);
    v.remember("kwc_a", "s1", "h1", T);
    expect(v.accepted("kwc_a", "s1", current, at(299_999))).toBe(true);
    expect(v.accepted("kwc_a", "s1", current, at(300_000))).toBe(false);
    expect(v.accepted("kwc_a", "s1", current, T)).toBe(false); // an expired entry is gone
  });

  it("never accepts another secret, or the same secret for another client", () => {
    const v = new VerifiedSecrets({ ttlMs: 300_000, maxEntries: 10 });
    v.remember("kwc_a", "s1", "h1", T);
    expect(v.accepted("kwc_a", "s2", current, T)).toBe(false);
    expect(v.accepted("kwc_b", "s1", current, T)).toBe(false);
    expect(v.accepted("kwc_a:s", "1", current, T)).toBe(false);
  });

  it("after a rotation, accepts the old secret only within the overlap the row states", () => {
    const v = new VerifiedSecrets({ ttlMs: 300_000, maxEntries: 10 });
    v.remember("kwc_a", "s1", "h1", T);
    const rotated = { secretHash: "h2", previousSecretHash: "h1", previousSecretExpiresAt: at(60_000) };
    expect(v.accepted("kwc_a", "s1", rotated, at(59_999))).toBe(true);
    expect(v.accepted("kwc_a", "s1", rotated, at(60_000))).toBe(false);
    const endedAtOnce = { secretHash: "h2", previousSecretHash: "h1", previousSecretExpiresAt: T };
    v.remember("kwc_a", "s1", "h1", T);
    expect(v.accepted("kwc_a", "s1", endedAtOnce, T)).toBe(false);
  });

  it("forgets the least recently used verification past its bound", () => {
    const v = new VerifiedSecrets({ ttlMs: 300_000, maxEntries: 2 });
    v.remember("kwc_a", "s", "h1", T);
    v.remember("kwc_b", "s", "h1", T);
    expect(v.accepted("kwc_a", "s", current, T)).toBe(true); // kwc_b is now the least recently used
    v.remember("kwc_c", "s", "h1", T);
    expect(v.accepted("kwc_b", "s", current, T)).toBe(false);
    expect(v.accepted("kwc_a", "s", current, T)).toBe(true);
    expect(v.accepted("kwc_c", "s", current, T)).toBe(true);
  });

  it("refuses to remember for longer than 5 minutes", () => {
    expect(() => new VerifiedSecrets({ ttlMs: 300_001, maxEntries: 10 })).toThrow();
  });
});
