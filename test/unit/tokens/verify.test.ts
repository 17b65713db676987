import { beforeAll, describe, expect, it } from "vitest";
import {
  base64url,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
} from "jose";
import { KeywardError } from "../../../src/http/errors.js";
import type { HttpMethod } from "../../../src/policy/decide.js";
import { signAgentToken } from "../../../src/tokens/issue.js";
import type { KeySet } from "../../../src/signing-keys/signing-keys.js";
import { verifyAgentToken } from "../../../src/tokens/verify.js";

const ISSUER = "https://keyward.test";
const AUDIENCE = "keyward-proxy";
const KID = "kid-live";
const NOW = new Date("2030-06-01T12:00:00.000Z");
const T = Math.floor(NOW.getTime() / 1000);
const expected = { issuer: ISSUER, audience: AUDIENCE, leewaySeconds: 5, maxTtlSeconds: 3600, now: NOW };
/** Verification looks keys up by kid; in these tests, in a fixed set. */
const lookup = (set: KeySet) => (kid: string) => set.publicKeys.get(kid);

type Pair = { publicKey: CryptoKey; privateKey: CryptoKey; jwk: JWK };
async function pair(alg = "ES256"): Promise<Pair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { publicKey, privateKey, jwk: await exportJWK(publicKey) };
}

let live: Pair;
let other: Pair;
let keys: KeySet;

beforeAll(async () => {
  live = await pair();
  other = await pair();
  keys = {
    active: { kid: KID, privateKey: live.privateKey },
    publicKeys: new Map([[KID, { kid: KID, key: live.publicKey, jwk: { ...live.jwk, kid: KID, alg: "ES256", use: "sig" } }]]),
  };
});

const claims = { issuer: ISSUER, audience: AUDIENCE, agentId: "agent-1", clientId: "client-1", grantId: "grant-1", upstream: "hosting" };
const capabilities = { methods: ["GET", "POST"] as HttpMethod[], paths: ["/v1/**"], ttlSeconds: 600 };

/** A payload exactly like the ones Keyward signs, at time T. */
function goodPayload(overrides: Record<string, unknown> = {}): JWTPayload {
  const payload: Record<string, unknown> = {
    iss: ISSUER,
    sub: "agent-1",
    aud: AUDIENCE,
    iat: T,
    nbf: T,
    exp: T + 600,
    jti: "jti-1",
    client_id: "client-1",
    grant: "grant-1",
    scope: "hosting:GET",
    cap: { upstream: "hosting", methods: ["GET"], paths: ["/v1/**"] },
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete payload[k];
    else payload[k] = v;
  }
  return payload as JWTPayload;
}

/** Signs any payload/header with the given key, bypassing signAgentToken's own choices. */
async function forge(
  payload: JWTPayload,
  header: Partial<JWTHeaderParameters> = {},
  key: CryptoKey | Uint8Array = live.privateKey,
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: "ES256", kid: KID, typ: "at+jwt", ...header } as JWTHeaderParameters).sign(key);
}

const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));

async function rejection(token: string, exp = expected): Promise<KeywardError> {
  try {
    await verifyAgentToken(token, lookup(keys), exp);
  } catch (err) {
    expect(err).toBeInstanceOf(KeywardError);
    const e = err as KeywardError;
    expect(e.status).toBe(401);
    expect(e.extra.headers).toEqual({ "www-authenticate": 'Bearer realm="keyward", error="invalid_token"' });
    return e;
  }
  throw new Error("token was accepted");
}

describe("verifyAgentToken: round trip", () => {
  it("accepts a token Keyward signed and returns its capabilities", async () => {
    const signed = await signAgentToken(keys, claims, capabilities, NOW);
    await expect(verifyAgentToken(signed.token, lookup(keys), expected)).resolves.toEqual({
      jti: signed.jti,
      agentId: "agent-1",
      clientId: "client-1",
      grantId: "grant-1",
      upstream: "hosting",
      methods: ["GET", "POST"],
      paths: ["/v1/**"],
      scope: "hosting:GET hosting:POST",
      issuedAt: T,
      expiresAt: T + 600,
      ancestors: [],
      rootIssuedAt: T,
    });
  });

  it("accepts an exchanged token and returns its lineage", async () => {
    const delegation = { actor: { sub: "agent-1", client_id: "client-1" }, chain: ["jti-root", "jti-parent"], rootIssuedAt: T - 100 };
    const signed = await signAgentToken(keys, claims, capabilities, NOW, delegation);
    await expect(verifyAgentToken(signed.token, lookup(keys), expected)).resolves.toMatchObject({
      jti: signed.jti,
      ancestors: ["jti-root", "jti-parent"],
      rootIssuedAt: T - 100,
      actor: { sub: "agent-1", client_id: "client-1" },
    });
  });

  it("looks the key up asynchronously (a key set that reloads on an unknown kid)", async () => {
    const signed = await signAgentToken(keys, claims, capabilities, NOW);
    const slowLookup = async (kid: string) => {
      await new Promise((r) => setTimeout(r, 5));
      return keys.publicKeys.get(kid);
    };
    await expect(verifyAgentToken(signed.token, slowLookup, expected)).resolves.toMatchObject({ jti: signed.jti });
  });

  it("applies the configured leeway and lifetime ceiling", async () => {
    const token = (await signAgentToken(keys, claims, capabilities, NOW)).token;
    const late = { ...expected, now: new Date((T + 602) * 1000) };
    await expect(verifyAgentToken(token, lookup(keys), late)).resolves.toMatchObject({ issuedAt: T });
    await expect(verifyAgentToken(token, lookup(keys), { ...late, leewaySeconds: 0 })).rejects.toMatchObject({ code: "token_expired" });
    await expect(verifyAgentToken(token, lookup(keys), { ...expected, maxTtlSeconds: 599 })).rejects.toMatchObject({
      message: "token lifetime too long",
    });
  });

  it("accepts a token signed by an older key still in the set (rotation)", async () => {
    const signed = await signAgentToken(keys, claims, capabilities, NOW);
    const rotated: KeySet = {
      active: { kid: "kid-new", privateKey: other.privateKey },
      publicKeys: new Map([
        ["kid-new", { kid: "kid-new", key: other.publicKey, jwk: other.jwk }],
        [KID, keys.publicKeys.get(KID)!],
      ]),
    };
    await expect(verifyAgentToken(signed.token, lookup(rotated), expected)).resolves.toMatchObject({ jti: signed.jti });
    // ...and refuses it once that key is retired from the set
    const retired: KeySet = { active: rotated.active, publicKeys: new Map([["kid-new", rotated.publicKeys.get("kid-new")!]]) };
    await expect(verifyAgentToken(signed.token, lookup(retired), expected)).rejects.toMatchObject({ status: 401, code: "invalid_token" });
  });

  it("accepts the forge helper's baseline token (so every refusal below is caused by its one change)", async () => {
    await expect(verifyAgentToken(await forge(goodPayload()), lookup(keys), expected)).resolves.toMatchObject({ jti: "jti-1", methods: ["GET"] });
  });

  it("accepts the media-type spelling application/at+jwt", async () => {
    const token = await forge(goodPayload(), { typ: "application/at+jwt" });
    await expect(verifyAgentToken(token, lookup(keys), expected)).resolves.toMatchObject({ jti: "jti-1" });
  });

  it("accepts the full ceiling lifetime of 3600 seconds", async () => {
    const token = await forge(goodPayload({ exp: T + 3600 }));
    await expect(verifyAgentToken(token, lookup(keys), expected)).resolves.toMatchObject({ expiresAt: T + 3600 });
  });

  it("accepts a token without nbf", async () => {
    await expect(verifyAgentToken(await forge(goodPayload({ nbf: undefined })), lookup(keys), expected)).resolves.toMatchObject({ jti: "jti-1" });
  });
});

describe("verifyAgentToken: time", () => {
  const at = (seconds: number) => ({ ...expected, now: new Date((T + seconds) * 1000) });

  // [seconds after T, outcome]; exp = T + 600, tolerance 5 s
  const expiry: [number, string][] = [
    [0, "ok"],
    [599, "ok"],
    [600, "ok"],
    [604, "ok"],
    [605, "token_expired"],
    [606, "token_expired"],
    [86_400, "token_expired"],
  ];
  it.each(expiry)("at T+%i → %s", async (seconds, outcome) => {
    const token = (await signAgentToken(keys, claims, capabilities, NOW)).token;
    if (outcome === "ok") await expect(verifyAgentToken(token, lookup(keys), at(seconds))).resolves.toMatchObject({ issuedAt: T });
    else expect((await rejection(token, at(seconds))).code).toBe(outcome);
  });

  it("an expired token says so in its message", async () => {
    const token = await forge(goodPayload({ iat: T - 700, nbf: T - 700, exp: T - 100 }));
    const e = await rejection(token);
    expect(e.code).toBe("token_expired");
    expect(e.message).toBe("token has expired");
  });

  // [nbf offset from T, outcome]
  const notBefore: [number, string][] = [
    [5, "ok"],
    [6, "invalid_token"],
    [60, "invalid_token"],
  ];
  it.each(notBefore)("nbf T+%i → %s", async (offset, outcome) => {
    const token = await forge(goodPayload({ nbf: T + offset }));
    if (outcome === "ok") await expect(verifyAgentToken(token, lookup(keys), expected)).resolves.toMatchObject({ jti: "jti-1" });
    else expect((await rejection(token)).code).toBe(outcome);
  });

  // [iat offset from T, outcome]; no nbf so that only iat is in play
  const issuedAt: [number, string][] = [
    [5, "ok"],
    [6, "token issued in the future"],
    [3000, "token issued in the future"],
  ];
  it.each(issuedAt)("iat T+%i → %s", async (offset, outcome) => {
    const token = await forge(goodPayload({ nbf: undefined, iat: T + offset, exp: T + offset + 60 }));
    if (outcome === "ok") await expect(verifyAgentToken(token, lookup(keys), expected)).resolves.toMatchObject({ issuedAt: T + offset });
    else {
      const e = await rejection(token);
      expect(e.code).toBe("invalid_token");
      expect(e.message).toBe(outcome);
    }
  });

  const lifetimes: [string, Record<string, unknown>][] = [
    ["3601 seconds", { exp: T + 3601 }],
    ["one day", { exp: T + 86_400 }],
    ["iat long ago, exp still ahead", { iat: T - 7200, nbf: T - 7200, exp: T + 60 }],
  ];
  it.each(lifetimes)("lifetime %s is refused", async (_name, overrides) => {
    const e = await rejection(await forge(goodPayload(overrides)));
    expect(e.code).toBe("invalid_token");
    expect(e.message).toBe("token lifetime too long");
  });
});

describe("verifyAgentToken: forged and malformed tokens are refused with 401", () => {
  const attacks: [string, () => Promise<string>, string][] = [
    [
      "alg none (jose UnsecuredJWT)",
      async () => new UnsecuredJWT(goodPayload()).encode(),
      "token is invalid",
    ],
    [
      "alg none with kid and typ, built by hand",
      async () => `${b64json({ alg: "none", kid: KID, typ: "at+jwt" })}.${b64json(goodPayload())}.`,
      "token is invalid",
    ],
    [
      "alg none with the real signature reattached",
      async () => {
        const [, payload, signature] = (await forge(goodPayload())).split(".");
        return `${b64json({ alg: "none", kid: KID, typ: "at+jwt" })}.${payload}.${signature}`;
      },
      "token is invalid",
    ],
    [
      // The verified-token cache remembers tokens by their exact string: one token must have one spelling.
      "a valid token spelled differently (the unused low bits of its signature's last base64url character)",
      async () => {
        const token = await forge(goodPayload());
        const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        return token.slice(0, -1) + alphabet[alphabet.indexOf(token.at(-1)!) ^ 1];
      },
      "token is invalid",
    ],
    [
      "a valid token with base64 padding",
      async () => `${await forge(goodPayload())}==`,
      "token is invalid",
    ],
    [
      "HS256 keyed with the public key's SPKI PEM (algorithm confusion)",
      async () => forge(goodPayload(), { alg: "HS256" }, new TextEncoder().encode(await exportSPKI(live.publicKey))),
      "token is invalid",
    ],
    [
      "HS256 keyed with the public JWK's JSON (algorithm confusion)",
      async () => forge(goodPayload(), { alg: "HS256" }, new TextEncoder().encode(JSON.stringify(keys.publicKeys.get(KID)!.jwk))),
      "token is invalid",
    ],
    [
      "HS256 keyed with the public key's x coordinate",
      async () => forge(goodPayload(), { alg: "HS256" }, base64url.decode(live.jwk.x!)),
      "token is invalid",
    ],
    [
      "ES384 with another curve's key",
      async () => {
        const p384 = await pair("ES384");
        return forge(goodPayload(), { alg: "ES384" }, p384.privateKey);
      },
      "token is invalid",
    ],
    ["unknown kid", async () => forge(goodPayload(), { kid: "kid-unknown" }), "token signed by an unknown key"],
    ["no kid", async () => forge(goodPayload(), { kid: undefined }), "token signed by an unknown key"],
    ["kid naming an Object prototype member", async () => forge(goodPayload(), { kid: "__proto__" }), "token signed by an unknown key"],
    ["kid of the wrong type", async () => forge(goodPayload(), { kid: 1 as unknown as string }), "token signed by an unknown key"],
    [
      "jku header, even with a valid signature by the live key",
      async () => forge(goodPayload(), { jku: "https://evil.test/jwks.json" }),
      "token header not allowed",
    ],
    [
      "x5u header, even with a valid signature by the live key",
      async () => forge(goodPayload(), { x5u: "https://evil.test/cert.pem" }),
      "token header not allowed",
    ],
    [
      "embedded jwk of the attacker's own key, signed by it, with the live kid",
      async () => forge(goodPayload(), { jwk: other.jwk }, other.privateKey),
      "token header not allowed",
    ],
    [
      "embedded jwk of the live key, signed by the live key",
      async () => forge(goodPayload(), { jwk: live.jwk }),
      "token header not allowed",
    ],
    [
      "x5c header",
      async () => forge(goodPayload(), { x5c: ["MIIBIjANBgkq"] }),
      "token header not allowed",
    ],
    ["signature by another key under the live kid", async () => forge(goodPayload(), {}, other.privateKey), "token is invalid"],
    ["wrong issuer", async () => forge(goodPayload({ iss: "https://evil.test" })), "token is invalid"],
    ["issuer differing in case", async () => forge(goodPayload({ iss: ISSUER.toUpperCase() })), "token is invalid"],
    ["no issuer", async () => forge(goodPayload({ iss: undefined })), "token is invalid"],
    ["wrong audience", async () => forge(goodPayload({ aud: "another-service" })), "token is invalid"],
    ["no audience", async () => forge(goodPayload({ aud: undefined })), "token is invalid"],
    ["no typ", async () => forge(goodPayload(), { typ: undefined }), "token is invalid"],
    ["typ JWT", async () => forge(goodPayload(), { typ: "JWT" }), "token is invalid"],
    ["typ of another token kind", async () => forge(goodPayload(), { typ: "id_token+jwt" }), "token is invalid"],
    ["no exp", async () => forge(goodPayload({ exp: undefined })), "token is invalid"],
    ["no iat", async () => forge(goodPayload({ iat: undefined })), "token is invalid"],
    ["no sub", async () => forge(goodPayload({ sub: undefined })), "token is invalid"],
    ["no jti", async () => forge(goodPayload({ jti: undefined })), "token is invalid"],
    ["no cap", async () => forge(goodPayload({ cap: undefined })), "token claims are malformed"],
    ["cap is a string", async () => forge(goodPayload({ cap: "hosting:GET" })), "token claims are malformed"],
    ["cap without upstream", async () => forge(goodPayload({ cap: { methods: ["GET"], paths: ["/v1/**"] } })), "token claims are malformed"],
    ["cap with no methods", async () => forge(goodPayload({ cap: { upstream: "hosting", methods: [], paths: ["/v1/**"] } })), "token claims are malformed"],
    ["cap with no paths", async () => forge(goodPayload({ cap: { upstream: "hosting", methods: ["GET"], paths: [] } })), "token claims are malformed"],
    ["cap with an empty path", async () => forge(goodPayload({ cap: { upstream: "hosting", methods: ["GET"], paths: [""] } })), "token claims are malformed"],
    [
      "cap with an unknown method",
      async () => forge(goodPayload({ cap: { upstream: "hosting", methods: ["TRACE"], paths: ["/v1/**"] } })),
      "token claims are malformed",
    ],
    [
      "cap with a lower-case method",
      async () => forge(goodPayload({ cap: { upstream: "hosting", methods: ["get"], paths: ["/v1/**"] } })),
      "token claims are malformed",
    ],
    [
      "cap with an extra field",
      async () => forge(goodPayload({ cap: { upstream: "hosting", methods: ["GET"], paths: ["/v1/**"], deny: [] } })),
      "token claims are malformed",
    ],
    ["no scope", async () => forge(goodPayload({ scope: undefined })), "token claims are malformed"],
    [
      "chain without root_iat and act",
      async () => forge(goodPayload({ chain: ["jti-0"] })),
      "token claims are malformed",
    ],
    [
      "act without chain",
      async () => forge(goodPayload({ act: { sub: "agent-1", client_id: "client-1" } })),
      "token claims are malformed",
    ],
    [
      "root_iat after iat",
      async () => forge(goodPayload({ chain: ["jti-0"], root_iat: T + 1, act: { sub: "agent-1", client_id: "client-1" } })),
      "token claims are malformed",
    ],
    [
      "chain deeper than the exchange limit",
      async () =>
        forge(goodPayload({ chain: ["a", "b", "c", "d", "e", "f"], root_iat: T, act: { sub: "agent-1", client_id: "client-1" } })),
      "token claims are malformed",
    ],
    [
      "act with an extra field",
      async () => forge(goodPayload({ chain: ["jti-0"], root_iat: T, act: { sub: "agent-1", client_id: "client-1", x: 1 } })),
      "token claims are malformed",
    ],
    ["no client_id", async () => forge(goodPayload({ client_id: undefined })), "token claims are malformed"],
    ["empty client_id", async () => forge(goodPayload({ client_id: "" })), "token claims are malformed"],
    ["no grant", async () => forge(goodPayload({ grant: undefined })), "token claims are malformed"],
    ["grant is a number", async () => forge(goodPayload({ grant: 7 })), "token claims are malformed"],
    ["empty sub", async () => forge(goodPayload({ sub: "" })), "token claims are malformed"],
    ["fractional iat", async () => forge(goodPayload({ iat: T + 0.5 })), "token claims are malformed"],
    [
      "payload edited after signing (capabilities widened)",
      async () => {
        const [header, , signature] = (await forge(goodPayload())).split(".");
        const widened = goodPayload({ cap: { upstream: "hosting", methods: ["GET", "DELETE"], paths: ["/**"] } });
        return `${header}.${b64json(widened)}.${signature}`;
      },
      "token is invalid",
    ],
    [
      "header edited after signing",
      async () => {
        const [, payload, signature] = (await forge(goodPayload())).split(".");
        return `${b64json({ alg: "ES256", kid: KID, typ: "at+jwt", x: 1 })}.${payload}.${signature}`;
      },
      "token is invalid",
    ],
    ["truncated signature", async () => (await forge(goodPayload())).slice(0, -4), "token is invalid"],
    [
      "signature removed",
      async () => (await forge(goodPayload())).split(".").slice(0, 2).join(".") + ".",
      "token is invalid",
    ],
    ["two parts only", async () => (await forge(goodPayload())).split(".").slice(0, 2).join("."), "token is invalid"],
    ["header only", async () => (await forge(goodPayload())).split(".")[0]!, "token is invalid"],
    ["four parts", async () => (await forge(goodPayload())) + ".AAAA", "token is invalid"],
    ["empty string", async () => "", "token is invalid"],
    ["garbage", async () => "not-a-jwt", "token is invalid"],
    ["payload not JSON", async () => `${b64json({ alg: "ES256", kid: KID, typ: "at+jwt" })}.${base64url.encode("nope")}.AAAA`, "token is invalid"],
  ];

  it.each(attacks)("%s", async (_name, build, message) => {
    const e = await rejection(await build());
    expect(e.code).toBe("invalid_token");
    expect(e.message).toBe(message);
  });

  it("crit header is refused", async () => {
    const token = await new SignJWT(goodPayload())
      .setProtectedHeader({ alg: "ES256", kid: KID, typ: "at+jwt", crit: ["exp"] } as JWTHeaderParameters)
      .sign(live.privateKey)
      .catch(async () => {
        // jose refuses to sign an unrecognised crit; build it by hand then.
        const header = b64json({ alg: "ES256", kid: KID, typ: "at+jwt", crit: ["x-keyward"], "x-keyward": 1 });
        const [, payload, signature] = (await forge(goodPayload())).split(".");
        return `${header}.${payload}.${signature}`;
      });
    expect((await rejection(token)).code).toBe("invalid_token");
  });

  it("a token for another audience signed by Keyward itself is refused", async () => {
    const signed = await signAgentToken(keys, { ...claims, audience: "elsewhere" }, capabilities, NOW);
    expect((await rejection(signed.token)).code).toBe("invalid_token");
  });
});
