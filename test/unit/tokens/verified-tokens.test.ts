import { describe, expect, it } from "vitest";
import type { AgentToken } from "../../../src/tokens/claims.js";
import { rememberVerifiedTokens } from "../../../src/tokens/verified-tokens.js";

const T = 1_900_000_000_000;
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
/** A compact JWS as far as the cache looks at it (the header's kid); the fake verifier decides the rest. */
const jws = (jti: string, kid = "k1") => `${b64({ alg: "ES256", kid, typ: "at+jwt" })}.${b64({ jti })}.sig`;

function setup(options: { maxEntries?: number } = {}) {
  let now = T;
  const keys = new Set(["k1"]);
  const calls: string[] = [];
  const refuse = new Set<string>();
  const verify = rememberVerifiedTokens(
    async (token) => {
      const jti = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;
      calls.push(jti);
      if (refuse.has(jti) || now / 1000 - 5 >= T / 1000 + 60) throw new Error(`refused ${jti}`);
      return { jti, expiresAt: T / 1000 + 60, methods: ["GET"], ancestors: [] } as unknown as AgentToken;
    },
    { maxEntries: options.maxEntries ?? 100, leewaySeconds: 5, keyKnown: (kid) => keys.has(kid), now: () => now },
  );
  return { verify, calls, keys, refuse, setNow: (ms: number) => (now = ms) };
}

describe("rememberVerifiedTokens", () => {
  it("verifies a token once and hands out the same frozen result until it expires", async () => {
    const t = setup();
    const first = await t.verify(jws("a"));
    expect(await t.verify(jws("a"))).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.methods)).toBe(true);
    expect(t.calls).toEqual(["a"]);
  });

  it("verifies afresh, and so refuses, once exp plus the leeway has passed", async () => {
    const t = setup();
    await t.verify(jws("a"));
    t.setNow(T + 64_999);
    await t.verify(jws("a"));
    expect(t.calls).toEqual(["a"]);
    t.setNow(T + 65_000);
    await expect(t.verify(jws("a"))).rejects.toThrow("refused a");
    await expect(t.verify(jws("a"))).rejects.toThrow("refused a");
  });

  it("verifies afresh once the signing key has left the key set", async () => {
    const t = setup();
    await t.verify(jws("a"));
    t.keys.delete("k1");
    t.refuse.add("a");
    await expect(t.verify(jws("a"))).rejects.toThrow("refused a");
  });

  it("never remembers a failure, and a different string is a different token", async () => {
    const t = setup();
    t.refuse.add("a");
    await expect(t.verify(jws("a"))).rejects.toThrow();
    t.refuse.delete("a");
    await t.verify(jws("a"));
    await t.verify(jws("a") + "x");
    expect(t.calls).toEqual(["a", "a", "a"]);
  });

  it("forgets the least recently used token past its bound", async () => {
    const t = setup({ maxEntries: 2 });
    await t.verify(jws("a"));
    await t.verify(jws("b"));
    await t.verify(jws("a")); // b is now the least recently used
    await t.verify(jws("c"));
    await t.verify(jws("a"));
    await t.verify(jws("b"));
    expect(t.calls).toEqual(["a", "b", "c", "b"]);
  });
});
