import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import * as oauth from "oauth4webapi";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { claimsOf, clientOptions, discover, ISSUER, postForm } from "../helpers/oauth.js";
import { basic, createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

describe("OAuth 2.0 endpoints, driven by a standard client library (oauth4webapi)", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let as: oauth.AuthorizationServer;
  let alice: Agent;
  let bob: Agent;
  let securityKey: string;
  let auditorKey: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    // A small clock-skew leeway, so an expired token is inactive soon after its exp.
    broker = await startBroker(store, { KEYWARD_CLOCK_SKEW_SECONDS: "1" });
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "oauth-test-upstream-secret" });
    alice = await createAgent(broker, "alice");
    bob = await createAgent(broker, "bob");
    await createGrant(broker, {
      name: "deploy",
      agents: [alice.id, bob.id],
      upstream: "api",
      methods: ["GET", "POST"],
      paths: ["/v1/**"],
      maxTtlSeconds: 600,
    });
    securityKey = (await broker.admin("post", "/v1/admin-keys", { name: "sec", role: "security" })).body.key;
    auditorKey = (await broker.admin("post", "/v1/admin-keys", { name: "aud", role: "auditor" })).body.key;
    as = await discover(broker);
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const proxyGet = (token: string, path = "/proxy/api/v1/projects") => broker.http().get(path).set("authorization", `Bearer ${token}`);
  const adminBearer = (key: string): oauth.ClientAuth => (_as, _client, _body, headers) => headers.set("authorization", `Bearer ${key}`);

  async function clientCredentials(agent: Agent, auth: oauth.ClientAuth, parameters: Record<string, string>) {
    const client = { client_id: agent.clientId };
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, clientOptions(broker));
    return oauth.processClientCredentialsResponse(as, client, response);
  }

  async function introspect(token: string, key = securityKey) {
    const client = { client_id: "security-console" };
    const response = await oauth.introspectionRequest(as, client, adminBearer(key), token, clientOptions(broker));
    return oauth.processIntrospectionResponse(as, client, response);
  }

  it("publishes RFC 8414 metadata that the library accepts", () => {
    expect(as).toMatchObject({
      issuer: ISSUER,
      token_endpoint: `${ISSUER}/oauth2/token`,
      introspection_endpoint: `${ISSUER}/oauth2/introspect`,
      revocation_endpoint: `${ISSUER}/oauth2/revoke`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      grant_types_supported: ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
      token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    });
  });

  it("client_credentials with client_secret_basic: a token that works, and that introspection reports active", async () => {
    const result = await clientCredentials(alice, oauth.ClientSecretBasic(alice.clientSecret), { scope: "grant:deploy" });
    expect(result).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "api:GET api:POST" });
    expect((await proxyGet(result.access_token)).status).toBe(200);

    const claims = claimsOf(result.access_token);
    const introspection = await introspect(result.access_token);
    expect(introspection).toEqual({
      active: true,
      token_type: "Bearer",
      iss: ISSUER,
      aud: "keyward",
      sub: alice.id,
      client_id: alice.clientId,
      jti: claims.jti,
      iat: claims.iat,
      nbf: claims.nbf,
      exp: claims.exp,
      scope: "api:GET api:POST",
      grant: claims.grant,
      cap: { upstream: "api", methods: ["GET", "POST"], paths: ["/v1/**"] },
    });
  });

  it("RFC 9068 claims and header", async () => {
    const { access_token } = await clientCredentials(alice, oauth.ClientSecretBasic(alice.clientSecret), { scope: "grant:deploy" });
    const header = JSON.parse(Buffer.from(access_token.split(".")[0]!, "base64url").toString());
    expect(header).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    const claims = claimsOf(access_token);
    for (const claim of ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "grant", "cap"]) {
      expect(claims).toHaveProperty(claim);
    }
  });

  it("client_secret_post, narrowing by scope", async () => {
    const result = await clientCredentials(bob, oauth.ClientSecretPost(bob.clientSecret), {
      scope: "grant:deploy method:GET path:/v1/projects",
    });
    expect(result.scope).toBe("api:GET");
    expect(claimsOf(result.access_token).cap).toEqual({ upstream: "api", methods: ["GET"], paths: ["/v1/projects"] });
    expect((await proxyGet(result.access_token)).status).toBe(200);
    expect((await proxyGet(result.access_token, "/proxy/api/v1/other")).status).toBe(403);
  });

  it("narrowing by authorization_details (RFC 9396), including the lifetime", async () => {
    const details = [{ type: "keyward_grant", grant: "deploy", methods: ["GET"], ttlSeconds: 60 }];
    const result = await clientCredentials(alice, oauth.ClientSecretBasic(alice.clientSecret), {
      authorization_details: JSON.stringify(details),
    });
    expect(result.expires_in).toBe(60);
    expect(claimsOf(result.access_token)).toMatchObject({ cap: { methods: ["GET"], paths: ["/v1/**"] } });
  });

  it("refuses to widen, in the RFC 6749 error format", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ scope: "grant:deploy method:DELETE" }, "invalid_scope"],
      [{ scope: "grant:deploy path:/**" }, "invalid_scope"],
      [{ authorization_details: JSON.stringify([{ type: "keyward_grant", grant: "deploy", ttlSeconds: 601 }]) }, "invalid_scope"],
      [{ scope: "grant:no-such-grant" }, "invalid_scope"],
      [{ scope: "method:GET" }, "invalid_scope"],
      [{ scope: "grant:deploy admin" }, "invalid_scope"],
      [{ authorization_details: '[{"type":"other"}]' }, "invalid_authorization_details"],
      [{ scope: "grant:deploy method:GET", authorization_details: '[{"type":"keyward_grant","methods":["GET"]}]' }, "invalid_request"],
    ];
    for (const [fields, error] of cases) {
      const res = await postForm(broker, "/oauth2/token", { grant_type: "client_credentials", ...fields }, {
        authorization: basic(alice.clientId, alice.clientSecret),
      });
      expect(res.status, JSON.stringify(fields)).toBe(400);
      expect(res.body).toEqual({ error, error_description: expect.any(String) });
      expect(res.headers["cache-control"]).toBe("no-store");
    }
  });

  it("a grant that needs a human's approval: authorization_pending with the approval to poll, then the token", async () => {
    await createGrant(broker, { name: "deploy-approved", agents: [alice.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"], requiresApproval: true });
    const auth = { authorization: basic(alice.clientId, alice.clientSecret) };
    const held = await postForm(broker, "/oauth2/token", { grant_type: "client_credentials", scope: "grant:deploy-approved" }, auth);
    expect(held.status).toBe(400);
    expect(held.body).toEqual({ error: "authorization_pending", error_description: expect.any(String), approval_id: expect.any(String) });
    const approval = `/v1/approvals/${held.body.approval_id}`;
    expect((await broker.http().get(approval).set(auth)).body.status).toBe("pending");
    expect((await broker.http().post(`${approval}/approve`).set("authorization", `Bearer ${securityKey}`).send({})).status).toBe(200);
    const issued = await broker.http().get(approval).set(auth);
    expect(issued.body).toMatchObject({ status: "issued", token: { access_token: expect.any(String) } });
    expect((await proxyGet(issued.body.token.access_token)).status).toBe(200);
  });

  it("answers malformed requests with RFC 6749 errors", async () => {
    const auth = { authorization: basic(alice.clientId, alice.clientSecret) };
    const wrongSecret = await postForm(broker, "/oauth2/token", { grant_type: "client_credentials", scope: "grant:deploy" }, {
      authorization: basic(alice.clientId, "kws_wrong"),
    });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe("invalid_client");
    expect(wrongSecret.headers["www-authenticate"]).toMatch(/^Basic/);

    const noAuth = await postForm(broker, "/oauth2/token", { grant_type: "client_credentials", scope: "grant:deploy" });
    expect(noAuth.status).toBe(401);
    expect(noAuth.body.error).toBe("invalid_client");

    const twoMethods = await postForm(broker, "/oauth2/token", {
      grant_type: "client_credentials",
      client_id: alice.clientId,
      client_secret: alice.clientSecret,
    }, auth);
    expect(twoMethods.body.error).toBe("invalid_request");

    const unsupported = await postForm(broker, "/oauth2/token", { grant_type: "password", username: "x" }, auth);
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.error).toBe("unsupported_grant_type");

    const noGrantType = await postForm(broker, "/oauth2/token", {}, auth);
    expect(noGrantType.body.error).toBe("invalid_request");

    // Unknown parameters are refused, not ignored: a client must not believe `audience` narrowed its token.
    // (resource, RFC 8707, is understood: test/e2e/oauth-clients.test.ts.)
    const unknownParam = await postForm(broker, "/oauth2/token", { grant_type: "client_credentials", scope: "grant:deploy", audience: "x" }, auth);
    expect(unknownParam.status).toBe(400);
    expect(unknownParam.body.error).toBe("invalid_request");

    const repeated = await broker.http().post("/oauth2/token").set(auth).type("form").send("grant_type=client_credentials&scope=grant:deploy&scope=grant:deploy");
    expect(repeated.body.error).toBe("invalid_request");

    const json = await broker.http().post("/oauth2/token").set(auth).send({ grant_type: "client_credentials" });
    expect(json.status).toBe(415);
    expect(json.body.error).toBe("invalid_request");
  });

  it("private_key_jwt (RFC 7523): a registered key authenticates; a replayed assertion is refused", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: "alice-key-1", alg: "ES256" };
    const registered = await broker.admin("put", `/v1/agents/${alice.id}/jwks`, { keys: [jwk] });
    expect(registered.status).toBe(200);
    expect(registered.body.jwks.keys).toEqual([jwk]);

    const client = { client_id: alice.clientId };
    const auth = oauth.PrivateKeyJwt({ key: privateKey, kid: "alice-key-1" });
    let sentBody = "";
    const capture = {
      ...clientOptions(broker),
      [oauth.customFetch]: (url: string, init: RequestInit) => {
        sentBody = String(init.body);
        return fetch(url.replace(ISSUER, broker.url), init);
      },
    };
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, { scope: "grant:deploy" }, capture);
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    expect((await proxyGet(result.access_token)).status).toBe(200);

    // The very same request again: same assertion, same jti.
    const replay = await broker.http().post("/oauth2/token").type("form").send(sentBody);
    expect(replay.status).toBe(401);
    expect(replay.body).toEqual({ error: "invalid_client", error_description: "client assertion already used" });

    const refused = await broker.admin("get", "/v1/audit?kind=token.refused&limit=20");
    expect(refused.body.events.map((e: { reason: string; details: { reason?: string } }) => [e.reason, e.details.reason])).toContainEqual([
      "invalid_client",
      "client assertion already used",
    ]);
  });

  it("private_key_jwt: wrong key, wrong audience, long-lived or unsigned assertions are refused", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const registeredKey = (await generateKeyPair("ES256", { extractable: true }));
    await broker.admin("put", `/v1/agents/${bob.id}/jwks`, {
      keys: [{ ...(await exportJWK(registeredKey.publicKey)), kid: "bob-key", alg: "ES256" }],
    });
    const now = Math.floor(Date.now() / 1000);
    const assertion = (key: CryptoKey, claims: Record<string, unknown> = {}, kid = "bob-key") =>
      new SignJWT({ jti: crypto.randomUUID(), ...claims })
        .setProtectedHeader({ alg: "ES256", kid })
        .setIssuer(bob.clientId)
        .setSubject(bob.clientId)
        .setAudience((claims.aud as string) ?? ISSUER)
        .setExpirationTime((claims.exp as number) ?? now + 60)
        .sign(key);
    const tryWith = async (clientAssertion: string) =>
      postForm(broker, "/oauth2/token", {
        grant_type: "client_credentials",
        scope: "grant:deploy",
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: clientAssertion,
      });

    expect((await tryWith(await assertion(registeredKey.privateKey))).status).toBe(200);
    const refusals: [string, string][] = [
      ["signed by an unregistered key", await assertion(privateKey)],
      // RFC 7523bis: the issuer identifier only (TOK-45).
      ["for the token endpoint URL", await assertion(registeredKey.privateKey, { aud: `${ISSUER}/oauth2/token` })],
      ["for another audience", await assertion(registeredKey.privateKey, { aud: "https://elsewhere.test" })],
      ["valid for an hour", await assertion(registeredKey.privateKey, { exp: now + 3600 })],
      ["expired", await assertion(registeredKey.privateKey, { exp: now - 60 })],
      ["naming an unknown kid", await assertion(registeredKey.privateKey, {}, "other-kid")],
      // TOK-23's characters where only a registered key can put them: the jti is stored to refuse a replay.
      ["with a NUL in its jti", await assertion(registeredKey.privateKey, { jti: "jti-\u0000" })],
      ["with a lone surrogate in its jti", await assertion(registeredKey.privateKey, { jti: "jti-\ud800" })],
    ];
    for (const [name, a] of refusals) {
      const res = await tryWith(a);
      expect(res.status, name).toBe(401);
      expect(res.body.error, name).toBe("invalid_client");
    }
  });

  it("registering keys: private keys and unusable keys are refused", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: "k", alg: "ES256" };
    expect((await broker.admin("put", `/v1/agents/${bob.id}/jwks`, { keys: [privateJwk] })).status).toBe(400);
    const mismatched = { ...(await exportJWK(publicKey)), kid: "k", alg: "ES384" };
    expect((await broker.admin("put", `/v1/agents/${bob.id}/jwks`, { keys: [mismatched] })).status).toBe(400);
    const hmac = { kty: "oct", k: "c2VjcmV0", kid: "k", alg: "HS256" };
    expect((await broker.admin("put", `/v1/agents/${bob.id}/jwks`, { keys: [hmac] })).status).toBe(400);
  });

  it("introspection: inactive for garbage, expired and revoked tokens; only admin and security keys may ask", async () => {
    expect(await introspect("not-a-token")).toEqual({ active: false });

    const token = await tokenFor(broker, alice, { grant: "deploy" });
    expect((await introspect(token)).active).toBe(true);
    const jti = claimsOf(token).jti as string;
    expect((await broker.admin("post", "/v1/revocations", { jti })).status).toBe(201);
    expect(await introspect(token)).toEqual({ active: false });

    const short = await tokenFor(broker, alice, { grant: "deploy", ttlSeconds: 1 });
    // Expired beyond the 1 s clock-skew leeway.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await introspect(short)).toEqual({ active: false });

    const live = await tokenFor(broker, alice, { grant: "deploy" });
    const byAuditor = await postForm(broker, "/oauth2/introspect", { token: live }, { authorization: `Bearer ${auditorKey}` });
    expect(byAuditor.status).toBe(403);
    expect(byAuditor.body.error).toBe("insufficient_scope");
    const anonymous = await postForm(broker, "/oauth2/introspect", { token: live });
    expect(anonymous.status).toBe(401);
    const byAgent = await postForm(broker, "/oauth2/introspect", { token: live }, { authorization: `Bearer ${live}` });
    expect(byAgent.status).toBe(401);
    expect((await introspect(live, broker.adminKey)).active).toBe(true);
  });

  it("revocation (RFC 7009): an agent revokes its own token; not another agent's", async () => {
    const client = { client_id: alice.clientId };
    const own = await tokenFor(broker, alice, { grant: "deploy" });
    const response = await oauth.revocationRequest(as, client, oauth.ClientSecretBasic(alice.clientSecret), own, clientOptions(broker));
    await oauth.processRevocationResponse(response);
    expect((await proxyGet(own)).status).toBe(401);

    const bobs = await tokenFor(broker, bob, { grant: "deploy" });
    const theirs = await postForm(broker, "/oauth2/revoke", { token: bobs }, { authorization: basic(alice.clientId, alice.clientSecret) });
    expect(theirs.status).toBe(400);
    expect(theirs.body.error).toBe("unauthorized_client");
    expect((await proxyGet(bobs)).status).toBe(200);

    // Invalid tokens need no revocation (RFC 7009 §2.2).
    const garbage = await postForm(broker, "/oauth2/revoke", { token: "garbage" }, { authorization: basic(alice.clientId, alice.clientSecret) });
    expect(garbage.status).toBe(200);
    const anonymous = await postForm(broker, "/oauth2/revoke", { token: bobs });
    expect(anonymous.status).toBe(401);
  });

  it("client secret rotation: the old secret works during the overlap, and not after", async () => {
    const carol = await createAgent(broker, "carol");
    await broker.admin("patch", `/v1/grants/${(await broker.admin("get", "/v1/grants")).body.grants[0].id}`, {
      agents: [alice.id, bob.id, carol.id],
    });
    const rotated = await broker.admin("post", `/v1/agents/${carol.id}/rotate-secret`, { overlapSeconds: 600 });
    expect(rotated.status).toBe(200);
    expect(rotated.headers["cache-control"]).toBe("no-store");
    expect(rotated.body.clientSecret).toMatch(/^kws_/);
    expect(rotated.body.previousSecretExpiresAt).toEqual(expect.any(String));
    const fresh = { clientId: carol.clientId, clientSecret: rotated.body.clientSecret as string };
    expect(await tokenFor(broker, carol, { grant: "deploy" })).toEqual(expect.any(String));
    expect(await tokenFor(broker, fresh, { grant: "deploy" })).toEqual(expect.any(String));

    // Rotating again with no overlap: only the newest secret works.
    const again = await broker.admin("post", `/v1/agents/${carol.id}/rotate-secret`, { overlapSeconds: 0 });
    const newest = { clientId: carol.clientId, clientSecret: again.body.clientSecret as string };
    for (const stale of [carol, fresh]) {
      const res = await broker.http().post("/v1/tokens").set("authorization", basic(stale.clientId, stale.clientSecret)).send({ grant: "deploy" });
      expect(res.status).toBe(401);
    }
    expect(await tokenFor(broker, newest, { grant: "deploy" })).toEqual(expect.any(String));

    // Without a body the configured overlap applies (KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS, one day).
    const byDefault = await broker.admin("post", `/v1/agents/${carol.id}/rotate-secret`);
    expect(new Date(byDefault.body.previousSecretExpiresAt).getTime() - Date.now()).toBeGreaterThan(86_000_000);
    expect(await tokenFor(broker, newest, { grant: "deploy" })).toEqual(expect.any(String));
  });

  it("never logs a secret, an assertion or a token", () => {
    const joined = broker.logs.join("\n");
    for (const secret of [alice.clientSecret, bob.clientSecret, "oauth-test-upstream-secret"]) expect(joined).not.toContain(secret);
    expect(joined).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\.eyJ/);
  });
});
