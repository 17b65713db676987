import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import {
  agentJwksBody,
  unusableKeys,
  verifyClientAssertion,
  type AgentJwk,
} from "../../../src/agents/client-keys.js";

const CLIENT = "kwc_agent";
const ISSUER = "https://kw.example";
const NOW = new Date("2030-01-01T00:00:00Z");
const T = NOW.getTime() / 1000;
const expected = { clientId: CLIENT, issuer: ISSUER, leewaySeconds: 5, now: NOW };
const ISSUER_ONLY = `assertion aud must be Keyward's issuer identifier alone: ${ISSUER} (RFC 7523bis: not the token endpoint URL)`;

async function keyPair(alg: string, kid: string): Promise<{ privateKey: CryptoKey; jwk: AgentJwk }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg } as AgentJwk };
}

const es256 = await keyPair("ES256", "k1");
const eddsa = await keyPair("EdDSA", "k2");
const stranger = await keyPair("ES256", "k1");
const registered = [es256.jwk, eddsa.jwk];

async function assertion(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key: CryptoKey = es256.privateKey,
): Promise<string> {
  const payload: Record<string, unknown> = { iss: CLIENT, sub: CLIENT, aud: ISSUER, jti: "j1", iat: T, exp: T + 60, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: "ES256", kid: "k1", ...header } as never).sign(key);
}

describe("verifyClientAssertion (RFC 7523 §3)", () => {
  it("accepts an assertion signed by a registered key, and says how long to remember its jti", async () => {
    await expect(verifyClientAssertion(await assertion(), registered, expected)).resolves.toEqual({
      jti: "j1",
      rememberUntil: new Date((T + 65) * 1000),
    });
  });

  it("accepts the issuer alone in an array, and another registered key and algorithm", async () => {
    await expect(verifyClientAssertion(await assertion({ aud: [ISSUER] }), registered, expected)).resolves.toMatchObject({ jti: "j1" });
    const ed = await assertion({}, { alg: "EdDSA", kid: "k2" }, eddsa.privateKey);
    await expect(verifyClientAssertion(ed, registered, expected)).resolves.toMatchObject({ jti: "j1" });
  });

  const refused: [string, () => Promise<string>, string][] = [
    ["signed by an unregistered key under a registered kid", () => assertion({}, {}, stranger.privateKey), "assertion is invalid"],
    ["an unknown kid", () => assertion({}, { kid: "k9" }), "assertion signed by an unregistered key"],
    ["no kid", () => assertion({}, { kid: undefined }), "assertion signed by an unregistered key"],
    ["another algorithm than the key's", () => assertion({}, { alg: "EdDSA", kid: "k1" }, eddsa.privateKey), "assertion algorithm does not match the key"],
    ["an embedded jwk", () => assertion({}, { jwk: es256.jwk }), "assertion header not allowed"],
    ["a jku", () => assertion({}, { jku: "https://evil.test/jwks" }), "assertion header not allowed"],
    ["another issuer", () => assertion({ iss: "kwc_other" }), "assertion is invalid"],
    ["another subject", () => assertion({ sub: "kwc_other" }), "assertion is invalid"],
    ["another audience", () => assertion({ aud: "https://elsewhere.test" }), ISSUER_ONLY],
    ["Keyward's audience beside another (TOK-39)", () => assertion({ aud: [ISSUER, "https://elsewhere.test"] }), ISSUER_ONLY],
    ["the token endpoint URL as audience (TOK-45)", () => assertion({ aud: `${ISSUER}/oauth2/token` }), ISSUER_ONLY],
    ["the issuer beside the token endpoint URL", () => assertion({ aud: [ISSUER, `${ISSUER}/oauth2/token`] }), ISSUER_ONLY],
    ["an empty audience array", () => assertion({ aud: [] }), ISSUER_ONLY],
    ["no exp", () => assertion({ exp: undefined }), "assertion is invalid"],
    ["no jti", () => assertion({ jti: undefined }), "assertion is invalid"],
    ["a jti that is not a string", () => assertion({ jti: 7 }), "assertion jti is invalid"],
    ["a jti with a NUL, which the replay table cannot store", () => assertion({ jti: "j\u0000" }), "assertion jti is invalid"],
    ["a jti with a lone surrogate", () => assertion({ jti: "j\ud800" }), "assertion jti is invalid"],
    ["expired beyond the leeway", () => assertion({ iat: T - 120, exp: T - 6 }), "assertion has expired"],
    ["valid for too long", () => assertion({ exp: T + 306 }), "assertion must expire within 300 seconds"],
    ["not yet valid", () => assertion({ nbf: T + 60 }), "assertion is invalid"],
  ];
  it.each(refused)("refuses %s", async (_name, build, message) => {
    await expect(verifyClientAssertion(await build(), registered, expected)).rejects.toThrow(message);
  });

  it("refuses an HMAC assertion keyed with the public key (algorithm confusion)", async () => {
    const hs = await new SignJWT({ iss: CLIENT, sub: CLIENT, aud: ISSUER, jti: "j", exp: T + 60 })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .sign(new TextEncoder().encode(JSON.stringify(es256.jwk)));
    await expect(verifyClientAssertion(hs, registered, expected)).rejects.toThrow();
  });
});

describe("registering public keys", () => {
  const parse = (keys: unknown[]) => agentJwksBody.safeParse({ keys });

  it("accepts public keys with a kid and an asymmetric alg", async () => {
    const rsa2048 = { ...generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" }), kid: "r", alg: "PS256" };
    const keys = [...registered, rsa2048];
    expect(parse(keys).success).toBe(true);
    expect(parse([]).success).toBe(true);
    expect(await unusableKeys(keys as AgentJwk[])).toEqual([]);
  });

  it("refuses private members, symmetric keys, duplicate kids, too many keys, short RSA moduli", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: "p", alg: "ES256" };
    // jose will not generate a short RSA key; node:crypto will.
    const rsa1024 = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
    const cases: [string, unknown[]][] = [
      ["a private key", [privateJwk]],
      ["an HMAC key", [{ kty: "oct", k: "c2VjcmV0", kid: "h", alg: "HS256" }]],
      ["no alg", [{ ...es256.jwk, alg: undefined }]],
      ["alg none", [{ ...es256.jwk, alg: "none" }]],
      ["no kid", [{ ...es256.jwk, kid: undefined }]],
      ["duplicate kids", [es256.jwk, { ...eddsa.jwk, kid: "k1" }]],
      ["six keys", Array.from({ length: 6 }, (_, i) => ({ ...es256.jwk, kid: `k${i}` }))],
      ["a 1024-bit RSA key", [{ ...rsa1024, kid: "r", alg: "RS256" }]],
      ["use enc", [{ ...es256.jwk, use: "enc" }]],
    ];
    for (const [name, keys] of cases) expect(parse(keys).success, name).toBe(false);
  });

  it("finds keys that do not fit their declared algorithm", async () => {
    const mismatched: AgentJwk = { ...es256.jwk, alg: "ES384" };
    const garbage: AgentJwk = { ...es256.jwk, kid: "g", x: "AAAA" } as JWK as AgentJwk;
    expect(await unusableKeys([es256.jwk, mismatched, garbage])).toEqual(["k1", "g"]);
  });
});
