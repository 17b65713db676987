import { describe, expect, it } from "vitest";
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from "jose";
import type { HttpMethod } from "../../../src/policy/decide.js";
import { MAX_TOKEN_TTL_SECONDS } from "../../../src/tokens/claims.js";
import type { AgentToken } from "../../../src/tokens/claims.js";
import {
  delegationFrom,
  narrowCapabilities,
  parentLimits,
  signAgentToken,
  type GrantLimits,
  type TokenRequest,
  type TtlPolicy,
} from "../../../src/tokens/issue.js";
import type { KeySet } from "../../../src/signing-keys/signing-keys.js";

const grant: GrantLimits = { methods: ["GET", "POST"], paths: ["/v1/**", "/v2/projects/*"], maxTtlSeconds: 900 };
const TTL: TtlPolicy = { defaultTtlSeconds: 900, maxTtlSeconds: 3600 };

describe("MAX_TOKEN_TTL_SECONDS", () => {
  it("is one hour", () => {
    expect(MAX_TOKEN_TTL_SECONDS).toBe(3600);
  });
});

describe("narrowCapabilities: granted", () => {
  const cases: [string, TokenRequest, { methods: HttpMethod[]; paths: string[]; ttlSeconds: number }][] = [
    ["nothing asked: the grant's limits", {}, { methods: ["GET", "POST"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 900 }],
    ["shorter TTL", { ttlSeconds: 60 }, { methods: ["GET", "POST"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 60 }],
    ["TTL exactly the maximum", { ttlSeconds: 900 }, { methods: ["GET", "POST"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 900 }],
    ["one method", { methods: ["GET"] }, { methods: ["GET"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 900 }],
    ["methods reordered", { methods: ["POST", "GET"] }, { methods: ["POST", "GET"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 900 }],
    ["duplicate methods collapse", { methods: ["GET", "GET"] }, { methods: ["GET"], paths: ["/v1/**", "/v2/projects/*"], ttlSeconds: 900 }],
    ["narrower path under **", { paths: ["/v1/projects/*"] }, { methods: ["GET", "POST"], paths: ["/v1/projects/*"], ttlSeconds: 900 }],
    ["the ** itself", { paths: ["/v1/**"] }, { methods: ["GET", "POST"], paths: ["/v1/**"], ttlSeconds: 900 }],
    ["** base with zero segments", { paths: ["/v1"] }, { methods: ["GET", "POST"], paths: ["/v1"], ttlSeconds: 900 }],
    ["nested ** under **", { paths: ["/v1/a/**/b"] }, { methods: ["GET", "POST"], paths: ["/v1/a/**/b"], ttlSeconds: 900 }],
    ["literal under *", { paths: ["/v2/projects/abc"] }, { methods: ["GET", "POST"], paths: ["/v2/projects/abc"], ttlSeconds: 900 }],
    ["placeholder under *, granted as the * it means (REQ-82)", { paths: ["/v2/projects/{id}"] }, { methods: ["GET", "POST"], paths: ["/v2/projects/*"], ttlSeconds: 900 }],
    ["duplicate paths collapse", { paths: ["/v1/x", "/v1/x"] }, { methods: ["GET", "POST"], paths: ["/v1/x"], ttlSeconds: 900 }],
    [
      "everything narrowed at once",
      { ttlSeconds: 30, methods: ["POST"], paths: ["/v1/deploys", "/v2/projects/p1"] },
      { methods: ["POST"], paths: ["/v1/deploys", "/v2/projects/p1"], ttlSeconds: 30 },
    ],
  ];

  it.each(cases)("%s", (_name, request, capabilities) => {
    expect(narrowCapabilities(grant, request, TTL)).toEqual({ ok: true, capabilities });
  });

  it("returns copies, never the grant's own arrays", () => {
    const result = narrowCapabilities(grant, {}, TTL);
    if (!result.ok) throw new Error(result.reason);
    expect(result.capabilities.methods).not.toBe(grant.methods);
    expect(result.capabilities.paths).not.toBe(grant.paths);
    result.capabilities.methods.push("DELETE");
    result.capabilities.paths.push("/**");
    expect(grant.methods).toEqual(["GET", "POST"]);
    expect(grant.paths).toEqual(["/v1/**", "/v2/projects/*"]);
  });
});

describe("narrowCapabilities: widening refused", () => {
  const cases: [string, GrantLimits, TokenRequest, string][] = [
    ["TTL over the grant", grant, { ttlSeconds: 901 }, "ttlSeconds exceeds the grant's maximum of 900"],
    ["TTL far over the grant", grant, { ttlSeconds: 86_400 }, "ttlSeconds exceeds the grant's maximum of 900"],
    [
      "TTL over the hard ceiling even when the grant allows more",
      { ...grant, maxTtlSeconds: 7200 },
      { ttlSeconds: 3601 },
      "ttlSeconds exceeds the grant's maximum of 3600",
    ],
    ["method the grant lacks", grant, { methods: ["DELETE"] }, "the grant does not allow DELETE"],
    ["one extra method among allowed ones", grant, { methods: ["GET", "PUT", "POST"] }, "the grant does not allow PUT"],
    ["all of the tree", grant, { paths: ["/**"] }, "the grant does not cover path /**"],
    ["sibling tree", grant, { paths: ["/v3/**"] }, "the grant does not cover path /v3/**"],
    ["any depth where the grant has one segment", grant, { paths: ["/v2/projects/**"] }, "the grant does not cover path /v2/projects/**"],
    ["one segment higher", grant, { paths: ["/v2/*"] }, "the grant does not cover path /v2/*"],
    ["two segments where the grant has one", grant, { paths: ["/v2/projects/*/x"] }, "the grant does not cover path /v2/projects/*/x"],
    ["wildcard where the grant has a literal", { ...grant, paths: ["/v1/status"] }, { paths: ["/v1/*"] }, "the grant does not cover path /v1/*"],
    ["one bad path among good ones", grant, { paths: ["/v1/a", "/v2/**", "/v1/b"] }, "the grant does not cover path /v2/**"],
    ["root", grant, { paths: ["/"] }, "the grant does not cover path /"],
    // The route schema refuses these first; the function must not rely on it.
    ["zero TTL", grant, { ttlSeconds: 0 }, "ttlSeconds must be a positive integer"],
    ["negative TTL", grant, { ttlSeconds: -5 }, "ttlSeconds must be a positive integer"],
    ["NaN TTL", grant, { ttlSeconds: Number.NaN }, "ttlSeconds must be a positive integer"],
    ["fractional TTL", grant, { ttlSeconds: 1.5 }, "ttlSeconds must be a positive integer"],
    ["empty methods", grant, { methods: [] }, "no methods requested"],
    ["empty paths", grant, { paths: [] }, "no paths requested"],
  ];

  it.each(cases)("%s", (_name, limits, request, reason) => {
    expect(narrowCapabilities(limits, request, TTL)).toEqual({ ok: false, reason });
  });

  // [grant max, configured default, configured ceiling, request, outcome]
  const lifetimes: [number, number, number, number | undefined, number | string][] = [
    [86_400, 900, 3600, undefined, 900], // nothing asked: the configured default
    [120, 900, 3600, undefined, 120], // ...capped by the grant
    [3600, 3600, 600, undefined, 600], // ...and by the configured ceiling
    [86_400, 3600, 3600, undefined, 3600], // a grant above the hard ceiling changes nothing
    [3600, 900, 3600, 3600, 3600], // asking for the grant's maximum
    [3600, 900, 1800, 1801, "ttlSeconds exceeds the grant's maximum of 1800"], // the ceiling caps what may be asked
    [86_400, 900, 3600, 3601, "ttlSeconds exceeds the grant's maximum of 3600"],
  ];
  it.each(lifetimes)("grant max %i, default %i, ceiling %i, asked %s → %s", (maxTtlSeconds, defaultTtlSeconds, ceiling, asked, outcome) => {
    const result = narrowCapabilities({ ...grant, maxTtlSeconds }, { ttlSeconds: asked }, { defaultTtlSeconds, maxTtlSeconds: ceiling });
    if (typeof outcome === "number") expect(result).toMatchObject({ ok: true, capabilities: { ttlSeconds: outcome } });
    else expect(result).toEqual({ ok: false, reason: outcome });
  });
});

async function keySet(): Promise<KeySet> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = "kid-issue-test";
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  return { active: { kid, privateKey }, publicKeys: new Map([[kid, { kid, key: publicKey, jwk }]]) };
}

describe("signAgentToken", () => {
  const claims = {
    issuer: "https://keyward.test",
    audience: "keyward-proxy",
    agentId: "agent-1",
    clientId: "client-1",
    grantId: "grant-1",
    upstream: "hosting",
  };
  const capabilities = { methods: ["GET", "POST"] as HttpMethod[], paths: ["/v1/**"], ttlSeconds: 600 };
  const now = new Date("2030-01-02T03:04:05.678Z");
  const iat = Math.floor(now.getTime() / 1000);

  it("signs exactly the claims it was given, with a pinned header", async () => {
    const keys = await keySet();
    const signed = await signAgentToken(keys, claims, capabilities, now);
    expect(signed.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(signed.issuedAt).toEqual(new Date(iat * 1000));
    expect(signed.expiresAt).toEqual(new Date((iat + 600) * 1000));
    expect(signed.scope).toBe("hosting:GET hosting:POST");
    expect(decodeProtectedHeader(signed.token)).toEqual({ alg: "ES256", kid: "kid-issue-test", typ: "at+jwt" });
    expect(decodeJwt(signed.token)).toEqual({
      iss: "https://keyward.test",
      sub: "agent-1",
      aud: "keyward-proxy",
      iat,
      nbf: iat,
      exp: iat + 600,
      jti: signed.jti,
      client_id: "client-1",
      grant: "grant-1",
      scope: "hosting:GET hosting:POST",
      cap: { upstream: "hosting", methods: ["GET", "POST"], paths: ["/v1/**"] },
    });
  });

  it("adds the delegation claims (act, chain, root_iat) to an exchanged token, and records the kid", async () => {
    const keys = await keySet();
    const delegation = { actor: { sub: "agent-1", client_id: "client-1" }, chain: ["root", "parent"], rootIssuedAt: iat - 60 };
    const signed = await signAgentToken(keys, claims, capabilities, now, delegation);
    expect(signed.kid).toBe("kid-issue-test");
    expect(decodeJwt(signed.token)).toMatchObject({
      act: { sub: "agent-1", client_id: "client-1" },
      chain: ["root", "parent"],
      root_iat: iat - 60,
    });
  });

  it("gives every token its own jti", async () => {
    const keys = await keySet();
    const a = await signAgentToken(keys, claims, capabilities, now);
    const b = await signAgentToken(keys, claims, capabilities, now);
    expect(a.jti).not.toBe(b.jti);
    expect(a.token).not.toBe(b.token);
  });
});

describe("token exchange: the parent token as the limits", () => {
  const T = 1_900_000_000;
  const now = new Date(T * 1000);
  const parent: AgentToken = {
    jti: "parent",
    agentId: "agent-1",
    clientId: "client-1",
    grantId: "grant-1",
    upstream: "hosting",
    methods: ["GET", "POST"],
    paths: ["/v1/**"],
    scope: "hosting:GET hosting:POST",
    issuedAt: T - 100,
    expiresAt: T + 300, // 300 s of life left
    ancestors: [],
    rootIssuedAt: T - 100,
  };
  const grant = { methods: ["GET", "POST", "DELETE"] as HttpMethod[], paths: ["/**"], maxTtlSeconds: 900 };
  const limits = parentLimits(parent, grant, now);
  const exchange = (request: TokenRequest) => narrowCapabilities(limits, request, TTL, "the parent token");

  it("the limits are the parent's methods, paths and remaining life", () => {
    expect(limits).toEqual({ methods: ["GET", "POST"], paths: ["/v1/**"], maxTtlSeconds: 300 });
    expect(parentLimits(parent, { ...grant, maxTtlSeconds: 120 }, now).maxTtlSeconds).toBe(120); // the grant's maximum, if shorter
    expect(parentLimits(parent, grant, new Date((T + 300) * 1000)).maxTtlSeconds).toBe(0);
  });

  // The grant narrowed after the parent was issued: its claims are no longer the limits.
  const narrowedGrants: [string, Partial<GrantLimits>, Pick<GrantLimits, "methods" | "paths">][] = [
    ["a method removed", { methods: ["GET"] }, { methods: ["GET"], paths: ["/v1/**"] }],
    ["the paths narrowed below the parent's", { paths: ["/v1/items/**", "/v2/**"] }, { methods: ["GET", "POST"], paths: ["/v1/items/**"] }],
    ["paths wider than the parent's", { paths: ["/**"] }, { methods: ["GET", "POST"], paths: ["/v1/**"] }],
    ["paths that only overlap the parent's", { paths: ["/{version}/items"] }, { methods: ["GET", "POST"], paths: [] }],
    ["every method removed", { methods: ["DELETE"] }, { methods: [], paths: ["/v1/**"] }],
  ];
  it.each(narrowedGrants)("the limits under a grant with %s: what the parent and the grant both allow", (_name, narrowed, expected) => {
    expect(parentLimits(parent, { ...grant, ...narrowed }, now)).toEqual({ ...expected, maxTtlSeconds: 300 });
  });

  const narrower: [string, TokenRequest, { methods: HttpMethod[]; paths: string[]; ttlSeconds: number }][] = [
    ["nothing asked: the parent's capabilities, for the life it has left", {}, { methods: ["GET", "POST"], paths: ["/v1/**"], ttlSeconds: 300 }],
    ["fewer methods", { methods: ["GET"] }, { methods: ["GET"], paths: ["/v1/**"], ttlSeconds: 300 }],
    ["narrower paths", { paths: ["/v1/projects/*"] }, { methods: ["GET", "POST"], paths: ["/v1/projects/*"], ttlSeconds: 300 }],
    ["shorter life", { ttlSeconds: 30 }, { methods: ["GET", "POST"], paths: ["/v1/**"], ttlSeconds: 30 }],
    ["exactly the life left", { ttlSeconds: 300 }, { methods: ["GET", "POST"], paths: ["/v1/**"], ttlSeconds: 300 }],
  ];
  it.each(narrower)("granted: %s", (_name, request, capabilities) => {
    expect(exchange(request)).toEqual({ ok: true, capabilities });
  });

  const wider: [string, TokenRequest, string][] = [
    ["a method the parent lacks", { methods: ["GET", "DELETE"] }, "the parent token does not allow DELETE"],
    ["a wider path", { paths: ["/**"] }, "the parent token does not cover path /**"],
    ["a sibling path", { paths: ["/v2/x"] }, "the parent token does not cover path /v2/x"],
    ["a life beyond the parent's expiry", { ttlSeconds: 301 }, "ttlSeconds exceeds the parent token's maximum of 300"],
  ];
  it.each(wider)("refused: %s", (_name, request, reason) => {
    expect(exchange(request)).toEqual({ ok: false, reason });
  });

  it("a parent with no life left yields nothing", () => {
    const expired = parentLimits(parent, grant, new Date((T + 300) * 1000));
    expect(narrowCapabilities(expired, {}, TTL, "the parent token")).toEqual({ ok: false, reason: "the parent token expires in less than a second" });
  });

  it("the child's chain is the parent's plus the parent, rooted where the parent's is", () => {
    expect(delegationFrom(parent)).toEqual({ actor: { sub: "agent-1", client_id: "client-1" }, chain: ["parent"], rootIssuedAt: T - 100 });
    const child: AgentToken = { ...parent, jti: "child", issuedAt: T, ancestors: ["parent"], rootIssuedAt: T - 100 };
    expect(delegationFrom(child)).toEqual({ actor: { sub: "agent-1", client_id: "client-1" }, chain: ["parent", "child"], rootIssuedAt: T - 100 });
  });
});
