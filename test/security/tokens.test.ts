import { createHmac } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_SCRYPT_WAITING } from "../../src/agents/client-secret.js";
import { ACCESS_TOKEN_TYPE, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { basic, createGrant, issueToken, tokenFor } from "../helpers/scenario.js";
import { statusOf, title } from "./cases.js";
import { assertNoSecretLeaks, brokerSigningKey, rawJson, rawRequest, startScenario, type Scenario } from "./harness.js";

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Token attacks (RFC 8725): every forged, replayed or misplaced token is refused and nothing is forwarded. */
describe("security: token attacks", () => {
  let s: Scenario;
  let signing: Awaited<ReturnType<typeof brokerSigningKey>>;
  let attacker: { privateKey: CryptoKey; publicJwk: Record<string, unknown> };
  /** The claims of a real token for grant A: forged tokens start from these. */
  let claims: JWTPayload;
  const now = () => Math.floor(Date.now() / 1000);
  const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

  beforeAll(async () => {
    s = await startScenario();
    signing = await brokerSigningKey(s);
    const pair = await generateKeyPair("ES256", { extractable: true });
    attacker = { privateKey: pair.privateKey, publicJwk: { ...(await exportJWK(pair.publicKey)), kid: "attacker" } };
    claims = decodeJwt(s.tokens.api);
  });

  afterAll(async () => {
    await s?.close();
  });

  /** Signs `payload` with Keyward's real key (or another), with a header of the test's choosing. */
  const sign = (payload: JWTPayload, header: Record<string, unknown> = {}, key: CryptoKey = signing.privateKey) =>
    new SignJWT(payload).setProtectedHeader({ alg: "ES256", kid: signing.kid, typ: "at+jwt", ...header } as never).sign(key);

  /** Signs any header as given, with no library checks, with Keyward's real key. */
  const rawSign = async (header: Record<string, unknown>, payload: JWTPayload) => {
    const input = `${b64(header)}.${b64(payload)}`;
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, signing.privateKey, Buffer.from(input));
    return `${input}.${Buffer.from(signature).toString("base64url")}`;
  };

  /** Calls the proxy with the token; returns the response and how many requests any server received. */
  const call = async (authorization: string | null, path = "/proxy/api/v1/items", extra: Record<string, string> = {}) => {
    const before = s.received();
    let req = s.broker.http().get(path);
    if (authorization !== null) req = req.set("authorization", authorization);
    for (const [k, v] of Object.entries(extra)) req = req.set(k, v);
    const res = s.record(await req);
    return { res, forwarded: s.received() - before };
  };

  const expectRefused = async (token: string, status: number, code?: string) => {
    const { res, forwarded } = await call(`Bearer ${token}`);
    expect(res.status).toBe(status);
    if (code) expect(res.body.error.code).toBe(code);
    expect(forwarded).toBe(0);
  };

  it("baseline: the real token and a re-signed copy of its claims are accepted (the forgeries below are meaningful)", async () => {
    const real = await call(`Bearer ${s.tokens.api}`);
    expect(real.res.status).toBe(200);
    expect(real.forwarded).toBe(1);
    const resigned = await call(`Bearer ${await sign(claims)}`);
    expect(resigned.res.status).toBe(200);
    expect(resigned.forwarded).toBe(1);
    const handmade = await call(`Bearer ${await rawSign({ alg: "ES256", kid: signing.kid, typ: "at+jwt" }, claims)}`);
    expect(handmade.res.status).toBe(200);
  });

  it(title("TOK-01"), async () => {
    for (const alg of ["none", "None", "NONE", "nOnE"]) {
      const token = `${b64({ alg, typ: "at+jwt", kid: signing.kid })}.${b64(claims)}.`;
      await expectRefused(token, statusOf("TOK-01"), "invalid_token");
      // Also with the real signature kept on.
      await expectRefused(token + s.tokens.api.split(".")[2], statusOf("TOK-01"), "invalid_token");
    }
  });

  it(title("TOK-02"), async () => {
    // The public key in every form an HMAC-confused verifier might use as its secret.
    const jwk = signing.jwk;
    const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
    const jwks = (await s.broker.http().get("/.well-known/jwks.json")).text;
    for (const secret of [JSON.stringify(publicJwk), jwks, JSON.stringify(jwks), jwk.x!]) {
      for (const alg of ["HS256", "HS384", "HS512"]) {
        const input = `${b64({ alg, typ: "at+jwt", kid: signing.kid })}.${b64(claims)}`;
        const hash = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg]!;
        const token = `${input}.${createHmac(hash, secret).update(input).digest("base64url")}`;
        await expectRefused(token, statusOf("TOK-02"), "invalid_token");
      }
    }
    // Other asymmetric algorithms with the attacker's own keys are no better.
    const rsa = await generateKeyPair("RS256");
    await expectRefused(await sign(claims, { alg: "RS256" }, rsa.privateKey), statusOf("TOK-02"), "invalid_token");
    const ps = await generateKeyPair("PS256");
    await expectRefused(await sign(claims, { alg: "PS256" }, ps.privateKey), statusOf("TOK-02"), "invalid_token");
  });

  it(title("TOK-03"), async () => {
    for (const kid of ["00000000-0000-0000-0000-000000000000", "attacker", ""]) {
      await expectRefused(await sign(claims, { kid }), statusOf("TOK-03"), "invalid_token");
    }
    // No kid at all.
    const input = `${b64({ alg: "ES256", typ: "at+jwt" })}.${b64(claims)}`;
    await expectRefused(`${input}.${s.tokens.api.split(".")[2]}`, statusOf("TOK-03"), "invalid_token");
  });

  it(title("TOK-04"), async () => {
    const kids: unknown[] = [
      "../../../../../../dev/null",
      "/etc/passwd",
      "' OR '1'='1",
      `${signing.kid}' --`,
      `"; DROP TABLE "SigningKey"; --`,
      `${signing.kid}\u0000`,
      "\ud800",
      "{{7*7}}",
      "k".repeat(4000),
      123,
      { $ne: null },
      [signing.kid],
      null,
    ];
    for (const kid of kids) {
      await expectRefused(await sign(claims, { kid }), statusOf("TOK-04"), "invalid_token");
    }
    expect(s.outsider.received).toHaveLength(0);
  });

  it(title("TOK-05"), async () => {
    const jwksUrl = `${s.outsider.url}/jwks.json`;
    const forged = [
      // Signed by the attacker, pointing at the attacker's keys.
      await sign(claims, { kid: "attacker", jku: jwksUrl }, attacker.privateKey),
      await sign(claims, { kid: "attacker", x5u: `${s.outsider.url}/cert.pem` }, attacker.privateKey),
      await sign(claims, { kid: "attacker", jwk: attacker.publicJwk }, attacker.privateKey),
      await sign(claims, { jwk: attacker.publicJwk, kid: undefined }, attacker.privateKey),
      await sign(claims, { kid: "attacker", x5c: ["MIIBfake"] }, attacker.privateKey),
      // Keyward's real kid and a valid signature, plus a pointer header: refused outright all the same.
      await sign(claims, { jku: jwksUrl }),
      await sign(claims, { jwk: attacker.publicJwk }),
      await sign(claims, { x5u: `${s.outsider.url}/cert.pem` }),
      // `crit` naming an extension the verifier must understand (built by hand: jose refuses to sign it).
      await rawSign({ alg: "ES256", kid: signing.kid, typ: "at+jwt", crit: ["x-keyward-bypass"], "x-keyward-bypass": true }, claims),
    ];
    for (const token of forged) await expectRefused(token, statusOf("TOK-05"), "invalid_token");
    expect(s.outsider.received).toHaveLength(0);
  });

  it(title("TOK-06"), async () => {
    for (const iss of ["http://evil.test", "http://keyward.test/", "HTTP://KEYWARD.TEST", ""]) {
      await expectRefused(await sign({ ...claims, iss }), statusOf("TOK-06"), "invalid_token");
    }
  });

  it(title("TOK-07"), async () => {
    for (const aud of ["other", "Keyward", ["other"], [], ""]) {
      await expectRefused(await sign({ ...claims, aud }), statusOf("TOK-07"), "invalid_token");
    }
  });

  it(title("TOK-08"), async () => {
    for (const claim of ["sub", "jti", "exp", "iat", "iss", "aud", "client_id", "grant", "cap"]) {
      const { [claim]: _dropped, ...rest } = claims;
      await expectRefused(await sign(rest), statusOf("TOK-08"), "invalid_token");
    }
    // Present but of the wrong shape.
    const patches: Record<string, unknown>[] = [{ cap: { ...(claims.cap as object), upstream: undefined } }, { cap: "api" }, { exp: String(claims.exp) }, { sub: "" }];
    for (const patch of patches) {
      await expectRefused(await sign({ ...claims, ...patch } as JWTPayload), statusOf("TOK-08"), "invalid_token");
    }
  });

  it(title("TOK-09"), async () => {
    const t = now();
    await expectRefused(await sign({ ...claims, iat: t - 3600, nbf: t - 3600, exp: t - 60 }), statusOf("TOK-09"), "token_expired");
    await expectRefused(await sign({ ...claims, iat: t - 7200, nbf: t - 7200, exp: t - 3600 }), statusOf("TOK-09"), "token_expired");
  });

  it(title("TOK-10"), async () => {
    const t = now();
    await expectRefused(await sign({ ...claims, iat: t, nbf: t + 600, exp: t + 900 }), statusOf("TOK-10"), "invalid_token");
  });

  it(title("TOK-11"), async () => {
    const t = now();
    await expectRefused(await sign({ ...claims, iat: t + 3000, nbf: t, exp: t + 3300 }), statusOf("TOK-11"), "invalid_token");
    await expectRefused(await sign({ ...claims, iat: t + 86_400 * 365, nbf: t, exp: t + 86_400 * 365 + 60 }), statusOf("TOK-11"), "invalid_token");
  });

  it(title("TOK-12"), async () => {
    await expectRefused(await sign(claims, {}, attacker.privateKey), statusOf("TOK-12"), "invalid_token");
    // A real signature moved onto other claims.
    const [header, , signature] = s.tokens.api.split(".");
    const widened = { ...claims, cap: { upstream: "api", methods: ["GET", "DELETE"], paths: ["/**"] } };
    await expectRefused(`${header}.${b64(widened)}.${signature}`, statusOf("TOK-12"), "invalid_token");
  });

  it(title("TOK-13"), async () => {
    const t = s.tokens.api;
    const [h, p, sig] = t.split(".") as [string, string, string];
    const flipped = sig.slice(0, 10) + (sig[10] === "A" ? "B" : "A") + sig.slice(11);
    const malformed = [
      t.slice(0, -10),
      `${h}.${p}`,
      `${h}.${p}.`,
      `${t}.${sig}`,
      `${h}.${p}.${flipped}`,
      `${h}.${p}.${sig}==`,
      // The same bytes spelled differently: the unused low bits of the last base64url character.
      `${h}.${p}.${sig.slice(0, -1)}${B64URL[B64URL.indexOf(sig.at(-1)!) ^ 1]}`,
      `${h}=.${p}.${sig}`,
      `${h}.${p}.${sig}.AAAA.BBBB`,
      "not.a.jwt",
      "a",
      "...",
      Buffer.from(t).toString("base64"),
    ];
    for (const token of malformed) {
      const { res, forwarded } = await call(`Bearer ${token}`);
      expect(res.status, token).toBe(statusOf("TOK-13"));
      expect(forwarded).toBe(0);
    }
    // (The scheme itself is case-insensitive, RFC 9110 §11.1: `bearer` is the same header.)
    for (const header of [`Bearer  ${t}`, `Bearer\t${t}`, `Bearer ${t} extra`, `Token ${t}`, "Bearer", "Bearer ", t, `Basic ${t}`, `Bearer ${t},Bearer ${t}`]) {
      const { res, forwarded } = await call(header);
      expect(res.status, header).toBe(statusOf("TOK-13"));
      expect(forwarded).toBe(0);
    }
  });

  it(title("TOK-14"), async () => {
    for (const param of ["access_token", "token", "jwt", "bearer", "authorization"]) {
      const { res, forwarded } = await call(null, `/proxy/api/v1/items?${param}=${s.tokens.api}`);
      expect(res.status).toBe(statusOf("TOK-14"));
      expect(forwarded).toBe(0);
    }
  });

  it(title("TOK-15"), async () => {
    for (const cookie of [`access_token=${s.tokens.api}`, `token=${s.tokens.api}`, `Authorization=Bearer ${s.tokens.api}`]) {
      const { res, forwarded } = await call(null, "/proxy/api/v1/items", { cookie });
      expect(res.status).toBe(statusOf("TOK-15"));
      expect(forwarded).toBe(0);
    }
  });

  it(title("TOK-16"), async () => {
    const valid = `Authorization: Bearer ${s.tokens.api}\r\n`;
    const other = `Authorization: Bearer ${s.tokens.other}\r\n`;
    for (const headers of [valid + valid, valid + "Authorization: Bearer garbage\r\n", "Authorization: Bearer garbage\r\n" + valid, valid + other, valid + "authorization: Basic eDp5\r\n"]) {
      const before = s.received();
      const res = await rawRequest(s.port, `GET /proxy/api/v1/items HTTP/1.1\r\nHost: keyward\r\n${headers}Connection: close\r\n\r\n`, {
        record: s.responses,
      });
      expect(res.status).toBe(statusOf("TOK-16"));
      expect(rawJson(res)?.error?.code).toBe("unauthenticated");
      expect(s.received() - before).toBe(0);
    }
  });

  it(title("TOK-17"), async () => {
    const token = await tokenFor(s.broker, s.alice, { grant: "grant-a" });
    expect((await call(`Bearer ${token}`)).res.status).toBe(200);
    const revoked = await s.broker.admin("post", "/v1/revocations", { jti: decodeJwt(token).jti, reason: "leaked" });
    expect(revoked.status).toBe(201);
    for (let i = 0; i < 3; i++) await expectRefused(token, statusOf("TOK-17"), "token_revoked");
    // Re-signing the revoked token's claims changes nothing: revocation is by jti.
    await expectRefused(await sign(decodeJwt(token)), statusOf("TOK-17"), "token_revoked");
  });

  it(title("TOK-18"), async () => {
    const before = { api: s.api.received.length, other: s.other.received.length };
    const { res, forwarded } = await call(`Bearer ${s.tokens.api}`, "/proxy/other/v1/items");
    expect(res.status).toBe(statusOf("TOK-18"));
    expect(res.body.error.code).toBe("wrong_upstream");
    expect(forwarded).toBe(0);
    // And the other way round, and across the two upstreams of the same agent.
    expect((await call(`Bearer ${s.tokens.other}`, "/proxy/api/v1/items")).res.status).toBe(statusOf("TOK-18"));
    expect((await call(`Bearer ${s.tokens.keyed}`, "/proxy/api/v1/items")).res.status).toBe(statusOf("TOK-18"));
    // Re-signing a token with another upstream in its capabilities does not help without the grant.
    const moved = await sign({ ...claims, cap: { ...(claims.cap as object), upstream: "other" } });
    expect((await call(`Bearer ${moved}`, "/proxy/other/v1/items")).res.status).toBe(statusOf("TOK-18"));
    expect({ api: s.api.received.length, other: s.other.received.length }).toEqual(before);
  });

  it(title("TOK-19"), async () => {
    const keys = [s.broker.adminKey];
    for (const role of ["security", "auditor"]) {
      keys.push((await s.broker.admin("post", "/v1/admin-keys", { name: `k-${role}`, role })).body.key);
    }
    for (const key of keys) {
      const { res, forwarded } = await call(`Bearer ${key}`);
      expect(res.status).toBe(statusOf("TOK-19"));
      expect(forwarded).toBe(0);
    }
    // Client credentials are not a token either.
    const basic = Buffer.from(`${s.alice.clientId}:${s.alice.clientSecret}`).toString("base64");
    expect((await call(`Basic ${basic}`)).res.status).toBe(statusOf("TOK-19"));
    expect((await call(`Bearer ${s.alice.clientSecret}`)).res.status).toBe(statusOf("TOK-19"));
  });

  it(title("TOK-20"), async () => {
    for (const typ of ["JWT", "jwt", "at+JWT ", "JOSE", undefined]) {
      await expectRefused(await sign(claims, { typ }), statusOf("TOK-20"), "invalid_token");
    }
    const t = now();
    await expectRefused(await sign({ ...claims, iat: t, nbf: t, exp: t + 7200 }), statusOf("TOK-20"), "invalid_token");
    await expectRefused(await sign({ ...claims, iat: t - 10, nbf: t - 10, exp: t + 86_400 * 365 }), statusOf("TOK-20"), "invalid_token");
  });

  it(title("TOK-21"), async () => {
    await createGrant(s.broker, {
      name: "grant-budget",
      agents: [s.alice.id],
      upstream: "api",
      methods: ["GET"],
      paths: ["/v1/**"],
      budgets: { perToken: { maxCalls: 3 } },
    });
    const exchange = async (parent: string) =>
      s.record(await postForm(s.broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: parent, subject_token_type: ACCESS_TOKEN_TYPE }));
    const use = async (token: string) => (await call(`Bearer ${token}`)).res.status;

    const parent = await tokenFor(s.broker, s.alice, { grant: "grant-budget" });
    expect(await use(parent)).toBe(200);
    // children (and a grandchild) spend the parent's budget as well as their own
    const child = await exchange(parent);
    expect(child.status, child.text).toBe(200);
    const grandchild = await exchange(child.body.access_token);
    expect(grandchild.status, grandchild.text).toBe(200);
    expect(await use(child.body.access_token)).toBe(200);
    expect(await use(grandchild.body.access_token)).toBe(200); // the parent's third call
    const before = s.received();
    for (const token of [parent, child.body.access_token, grandchild.body.access_token]) {
      const { res } = await call(`Bearer ${token}`);
      expect(res.status).toBe(statusOf("TOK-21"));
      expect(res.body.error).toMatchObject({ code: "budget_exceeded", reason: expect.stringMatching(/perToken\.maxCalls/) });
    }
    expect(s.received()).toBe(before);

    // a spent token, or one descending from it, cannot be exchanged for a fresh budget
    for (const spent of [parent, child.body.access_token, grandchild.body.access_token]) {
      const refused = await exchange(spent);
      expect(refused.status, refused.text).toBe(statusOf("TOK-21"));
      expect(refused.body).toMatchObject({ error: "invalid_grant", error_description: expect.stringMatching(/budget exceeded: perToken\.maxCalls \(3\) is spent/) });
    }
    // a sibling token issued directly has its own budget: per-token budgets are per family, not per agent
    expect(await use(await tokenFor(s.broker, s.alice, { grant: "grant-budget" }))).toBe(200);
  });

  it("the tokens forged above are all signed the way the test meant (sanity)", async () => {
    const forged = await sign(claims, { kid: "x" });
    expect(decodeProtectedHeader(forged)).toMatchObject({ alg: "ES256", kid: "x", typ: "at+jwt" });
  });

  it(title("SEC-02"), async () => {
    const res = s.record(await s.broker.http().get("/.well-known/jwks.json"));
    expect(res.status).toBe(statusOf("SEC-02"));
    const keys = res.body.keys as Record<string, unknown>[];
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
      for (const secretPart of ["d", "k", "p", "q", "dp", "dq", "qi"]) expect(key[secretPart]).toBeUndefined();
    }
    expect(keys.map((k) => k.kid)).toContain(signing.kid);
  });

  it(title("TOK-22"), async () => {
    const wrongSecret = basic(s.alice.clientId, "kws_wrong");
    const answered: { status: number; code: string; retryAfter?: string; at: number }[] = [];
    const flood = Array.from({ length: MAX_SCRYPT_WAITING + 16 }, () =>
      s.broker
        .http()
        .post("/v1/tokens")
        .set("authorization", wrongSecret)
        .send({ grant: s.grantA.name })
        .then((res) => void answered.push({ status: res.status, code: res.body.error?.code, retryAfter: res.headers["retry-after"], at: performance.now() })),
    );
    // Proxied calls during the flood: each waits for its audit events, written on the thread pool scrypt
    // runs on. Unbounded, the flood's scrypts took every thread and these calls were answered only as the
    // flood drained; now they are answered while nearly all of it still waits.
    for (let i = 0; i < 10; i++) expect((await call(`Bearer ${s.tokens.api}`)).res.status).toBe(200);
    const proxiedDone = performance.now();
    await Promise.all(flood);
    const refusedWrong = answered.filter((a) => a.status === 401);
    const busy = answered.filter((a) => a.status === statusOf("TOK-22"));
    expect(refusedWrong.length + busy.length).toBe(flood.length);
    expect(refusedWrong.every((a) => a.code === "invalid_client")).toBe(true);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy.every((a) => a.code === "client_auth_busy" && a.retryAfter === "1")).toBe(true);
    expect(refusedWrong.filter((a) => a.at < proxiedDone).length).toBeLessThan(refusedWrong.length / 2);
    // The agent's own secret still works once the flood is over.
    expect((await issueToken(s.broker, s.alice, { grant: s.grantA.name })).status).toBe(200);
  });

  describe(title("TOK-23"), () => {
    // Unsigned: the client id is read from the assertion before anything is verified.
    const assertion = (claims: JWTPayload) => `${b64({ alg: "ES256", kid: "k" })}.${b64({ aud: "x", jti: "j", exp: now() + 60, ...claims })}.AAAA`;
    const endpoints = [
      ["/oauth2/token", { grant_type: "client_credentials", scope: "grant:grant-a" }],
      ["/oauth2/revoke", { token: "abc" }],
      ["/oauth2/introspect", { token: "abc" }],
    ] as const;
    const unstorable = [
      ["NUL", "\u0000"],
      ["a lone surrogate", "\ud800"],
    ] as const;
    it.each(
      endpoints.flatMap(([path, params]) =>
        unstorable.flatMap(([name, c]) => (["iss", "sub"] as const).map((claim) => [`${path}, ${name} in ${claim}`, path, params, claim, c] as const)),
      ),
    )("%s", async (_name, path, params, claim, c) => {
      // In sub, beside a real client's id as issuer.
      const claims = claim === "iss" ? { iss: `kwc_${c}x`, sub: `kwc_${c}x` } : { iss: s.alice.clientId, sub: `kwc_${c}x` };
      const res = s.record(
        await postForm(s.broker, path, { ...params, client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: assertion(claims) }),
      );
      expect(res.status).toBe(statusOf("TOK-23"));
      expect(res.body.error).toBe("invalid_client");
    });
  });

  /** Token requests authenticated by an assertion of Mallory's (in no grant: one that authenticates gets invalid_scope) with the `aud` given. */
  const malloryAssertions = async () => {
    const key = await generateKeyPair("ES256", { extractable: true });
    const registered = await s.broker.admin("put", `/v1/agents/${s.mallory.id}/jwks`, {
      keys: [{ ...(await exportJWK(key.publicKey)), kid: "mallory-key", alg: "ES256" }],
    });
    expect(registered.status).toBe(200);
    const withAudience = (aud: string | string[]) =>
      new SignJWT({ jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: "ES256", kid: "mallory-key" })
        .setIssuer(s.mallory.clientId)
        .setSubject(s.mallory.clientId)
        .setAudience(aud)
        .setExpirationTime(now() + 60)
        .sign(key.privateKey);
    return async (aud: string | string[]) =>
      s.record(
        await postForm(s.broker, "/oauth2/token", {
          grant_type: "client_credentials",
          scope: `grant:${s.grantA.name}`,
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: await withAudience(aud),
        }),
      );
  };
  const ISSUER_ONLY = "assertion aud must be Keyward's issuer identifier alone: http://keyward.test (RFC 7523bis: not the token endpoint URL)";

  it(title("TOK-39"), async () => {
    const tokenRequest = await malloryAssertions();
    const issuer = "http://keyward.test";
    for (const aud of [[issuer, "https://other-as.example"], ["https://other-as.example", `${issuer}/oauth2/token`]]) {
      const res = await tokenRequest(aud);
      expect(res.status, JSON.stringify(aud)).toBe(statusOf("TOK-39"));
      expect(res.body).toEqual({ error: "invalid_client", error_description: ISSUER_ONLY });
    }
    // Keyward's issuer, as a string or alone in an array, still authenticates.
    for (const aud of [issuer, [issuer]]) {
      const res = await tokenRequest(aud);
      expect(res.status, JSON.stringify(aud)).toBe(400);
      expect(res.body.error, JSON.stringify(aud)).toBe("invalid_scope");
    }
  });

  it(title("TOK-45"), async () => {
    const tokenRequest = await malloryAssertions();
    const issuer = "http://keyward.test";
    for (const aud of [`${issuer}/oauth2/token`, [`${issuer}/oauth2/token`], [issuer, `${issuer}/oauth2/token`]]) {
      const res = await tokenRequest(aud);
      expect(res.status, JSON.stringify(aud)).toBe(statusOf("TOK-45"));
      expect(res.body, JSON.stringify(aud)).toEqual({ error: "invalid_client", error_description: ISSUER_ONLY });
    }
    const refusals = await s.broker.keyward.db.prisma.auditEvent.findMany({ where: { kind: "token.refused", actor: `client:${s.mallory.clientId}` } });
    expect(refusals.filter((e) => (e.details as { reason?: string }).reason === ISSUER_ONLY).length).toBeGreaterThanOrEqual(3);
  });

  it(title("TOK-42"), async () => {
    const parent = await tokenFor(s.broker, s.alice, { grant: s.grantA.name });
    const { jti } = decodeJwt(parent);
    const exchange = (extra: Record<string, string>, headers: Record<string, string> = {}) =>
      postForm(s.broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: parent, subject_token_type: ACCESS_TOKEN_TYPE, ...extra }, headers);
    const asBob = await exchange({}, { authorization: basic(s.bob.clientId, s.bob.clientSecret) });
    const namingMallory = await exchange({ client_id: s.mallory.clientId });
    for (const res of [asBob, namingMallory]) {
      s.record(res);
      expect(res.status).toBe(statusOf("TOK-42"));
      expect(res.body).toEqual({ error: "invalid_request", error_description: "the subject token was not issued to this client" });
    }
    const events = await s.broker.admin("get", `/v1/audit?kind=token.refused&agentId=${s.alice.id}&limit=50`);
    const refusals = (events.body.events as { actor: string; details: { exchangedFrom?: string; reason?: string } }[])
      .filter((e) => e.details.exchangedFrom === jti)
      .map((e) => [e.actor, e.details.reason]);
    expect(refusals).toEqual(
      expect.arrayContaining([
        [`agent:${s.bob.id}`, "the subject token was not issued to this client"],
        [`client:${s.mallory.clientId}`, "the subject token was not issued to this client"],
      ]),
    );
  });

  it(title("TOK-43"), async () => {
    const token = await tokenFor(s.broker, s.alice, { grant: s.grantA.name });
    const { jti } = decodeJwt(token);
    const res = s.record(await postForm(s.broker, "/oauth2/revoke", { token }, { authorization: basic(s.bob.clientId, s.bob.clientSecret) }));
    expect(res.status).toBe(statusOf("TOK-43"));
    expect(res.body.error).toBe("unauthorized_client");
    // Before the fix: only a log line; the security team searching alice's events saw nothing.
    const events = await s.broker.admin("get", `/v1/audit?kind=revocation.refused&agentId=${s.alice.id}&limit=50`);
    expect((events.body.events as { actor: string; jti: string; reason: string }[]).map((e) => [e.actor, e.jti, e.reason])).toEqual([
      [`agent:${s.bob.id}`, jti, "unauthorized_client"],
    ]);
    // Refused, the token still works.
    const call = await s.broker.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${token}`);
    expect(call.status).toBe(200);
  });

  it(title("SEC-01"), async () => {
    await assertNoSecretLeaks(s);
  });
});
