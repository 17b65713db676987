import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair } from "jose";
import * as oauth from "oauth4webapi";
import * as openid from "openid-client";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { claimsOf, clientOptions, discover, ISSUER, postForm } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

/**
 * Standard OAuth clients, unmodified: openid-client and oauth4webapi discover the broker, introspect
 * tokens with the client authentication an agent or a resource server uses, and are told about their
 * own tokens only. Plus the HTTP details such clients rely on (405 with Allow, RFC 6750 challenges,
 * RFC 8707 resource).
 */
describe("standard OAuth clients without special cases", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let bob: Agent;
  let as: oauth.AuthorizationServer;
  let aliceKey: CryptoKey;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "oauth-clients-upstream-secret" });
    await createUpstream(broker, { name: "billing", baseUrl: upstream.url, environment: "staging", secret: "oauth-clients-upstream-secret" });
    alice = await createAgent(broker, "alice");
    bob = await createAgent(broker, "bob");
    await createGrant(broker, { name: "deploy", agents: [alice.id, bob.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    const keys = await generateKeyPair("ES256", { extractable: true });
    aliceKey = keys.privateKey;
    const registered = await broker.admin("put", `/v1/agents/${alice.id}/jwks`, {
      keys: [{ ...(await exportJWK(keys.publicKey)), kid: "alice-key", alg: "ES256" }],
    });
    expect(registered.status).toBe(200);
    as = await discover(broker);
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("the metadata advertises how clients authenticate at introspection and revocation", () => {
    const methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
    expect(as).toMatchObject({
      introspection_endpoint: `${ISSUER}/oauth2/introspect`,
      introspection_endpoint_auth_methods_supported: methods,
      revocation_endpoint_auth_methods_supported: methods,
    });
  });

  describe("openid-client", () => {
    const configFor = (agent: Agent, auth: openid.ClientAuth) =>
      openid.discovery(new URL(ISSUER), agent.clientId, undefined, auth, {
        algorithm: "oauth2",
        execute: [openid.allowInsecureRequests],
        [openid.customFetch]: (url, init) => fetch(url.replace(ISSUER, broker.url), init as RequestInit),
      });

    it("obtains a token and introspects it with client_secret_basic, client_secret_post and private_key_jwt", async () => {
      for (const auth of [
        openid.ClientSecretBasic(alice.clientSecret),
        openid.ClientSecretPost(alice.clientSecret),
        openid.PrivateKeyJwt(aliceKey, { [oauth.modifyAssertion]: (header) => void (header.kid = "alice-key") }),
      ]) {
        const config = await configFor(alice, auth);
        const issued = await openid.clientCredentialsGrant(config, { scope: "grant:deploy" });
        const introspection = await openid.tokenIntrospection(config, issued.access_token);
        expect(introspection).toMatchObject({ active: true, sub: alice.id, client_id: alice.clientId, jti: claimsOf(issued.access_token).jti });
      }
    });

    it("an agent sees only its own tokens: another agent's live token is inactive to it", async () => {
      const bobs = await tokenFor(broker, bob, { grant: "deploy" });
      const config = await configFor(alice, openid.ClientSecretBasic(alice.clientSecret));
      expect(await openid.tokenIntrospection(config, bobs)).toEqual({ active: false });
      // Bob, and an admin key, see it live.
      const asBob = await configFor(bob, openid.ClientSecretBasic(bob.clientSecret));
      expect((await openid.tokenIntrospection(asBob, bobs)).active).toBe(true);
      const byAdmin = await postForm(broker, "/oauth2/introspect", { token: bobs }, { authorization: `Bearer ${broker.adminKey}` });
      expect(byAdmin.body).toMatchObject({ active: true, sub: bob.id });
    });

    it("a wrong secret is invalid_client, not an answer", async () => {
      const config = await configFor(alice, openid.ClientSecretBasic("wrong"));
      const err = await openid.tokenIntrospection(config, "whatever").catch((e: unknown) => e);
      // A 401 with a Basic challenge: openid-client surfaces the challenge, as RFC 6749 §5.2 intends.
      expect(err).toMatchObject({ code: "OAUTH_WWW_AUTHENTICATE_CHALLENGE", status: 401 });
      expect((err as { cause: { scheme: string }[] }).cause[0]).toMatchObject({ scheme: "basic" });
      const body = await (err as { response: Response }).response.json();
      expect(body.error).toBe("invalid_client");
    });
  });

  describe("oauth4webapi", () => {
    const introspect = async (agent: Agent, auth: oauth.ClientAuth, token: string) => {
      const client = { client_id: agent.clientId };
      const response = await oauth.introspectionRequest(as, client, auth, token, clientOptions(broker));
      return oauth.processIntrospectionResponse(as, client, response);
    };

    it("introspects with each client authentication method", async () => {
      const token = await tokenFor(broker, alice, { grant: "deploy" });
      for (const auth of [
        oauth.ClientSecretBasic(alice.clientSecret),
        oauth.ClientSecretPost(alice.clientSecret),
        oauth.PrivateKeyJwt({ key: aliceKey, kid: "alice-key" }),
      ]) {
        expect(await introspect(alice, auth, token)).toMatchObject({ active: true, sub: alice.id, scope: "api:GET" });
      }
      expect(await introspect(bob, oauth.ClientSecretPost(bob.clientSecret), token)).toEqual({ active: false });
    });
  });

  it("the OAuth endpoints answer other methods with 405 and Allow: POST", async () => {
    for (const path of ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"]) {
      const res = await broker.http().get(path);
      expect(res.status, path).toBe(405);
      expect(res.headers.allow).toBe("POST");
      expect(res.body).toEqual({ error: "invalid_request", error_description: `${path} takes POST only` });
    }
  });

  it("a proxy call with no credentials is challenged without an error code (RFC 6750 §3.1)", async () => {
    const bare = await broker.http().get("/proxy/api/v1/items");
    expect(bare.status).toBe(401);
    expect(bare.headers["www-authenticate"]).toBe('Bearer realm="keyward"');
    const bad = await broker.http().get("/proxy/api/v1/items").set("authorization", "Bearer a.b.c");
    expect(bad.headers["www-authenticate"]).toBe('Bearer realm="keyward", error="invalid_token"');
  });

  describe("resource (RFC 8707)", () => {
    const request = (resource: string) =>
      postForm(broker, "/oauth2/token", {
        grant_type: "client_credentials",
        client_id: alice.clientId,
        client_secret: alice.clientSecret,
        scope: "grant:deploy",
        resource,
      });

    it("is accepted when it names the grant's upstream, and the token works there only", async () => {
      for (const resource of [`${ISSUER}/proxy/api`, `${ISSUER}/proxy/api/`]) {
        const res = await request(resource);
        expect(res.status, resource).toBe(200);
        expect(claimsOf(res.body.access_token).cap).toMatchObject({ upstream: "api" });
      }
      const token = (await request(`${ISSUER}/proxy/api`)).body.access_token as string;
      expect((await broker.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${token}`)).status).toBe(200);
      expect((await broker.http().get("/proxy/billing/v1/items").set("authorization", `Bearer ${token}`)).status).toBe(403);
    });

    it("is refused with invalid_target for another upstream or anything that is not an upstream's URL", async () => {
      for (const resource of [
        `${ISSUER}/proxy/billing`,
        "https://api.example.com/",
        `${ISSUER}/proxy/api?x=1`,
        `${ISSUER}/proxy/api#frag`,
        `${ISSUER}/proxy/API`,
        "not a uri",
      ]) {
        const res = await request(resource);
        expect(res.status, resource).toBe(400);
        expect(res.body.error, resource).toBe("invalid_target");
        expect(res.body.error_description).toMatch(/resource|upstream/);
      }
    });
  });
});
