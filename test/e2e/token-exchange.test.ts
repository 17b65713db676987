import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as oauth from "oauth4webapi";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { ACCESS_TOKEN_TYPE, claimsOf, clientOptions, discover, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { basic, createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

describe("token exchange (RFC 8693): narrower tokens for sub-agents", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let bob: Agent;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "exchange-upstream-secret" });
    alice = await createAgent(broker, "alice");
    bob = await createAgent(broker, "bob");
    await createGrant(broker, {
      name: "deploy",
      agents: [alice.id, bob.id],
      upstream: "api",
      methods: ["GET", "POST", "DELETE"],
      paths: ["/v1/**"],
      maxTtlSeconds: 900,
    });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (method: "get" | "post" | "delete", path: string, token: string) =>
    broker.http()[method](`/proxy/api${path}`).set("authorization", `Bearer ${token}`);

  /** An exchange as a sub-agent holding only the parent token would send it (no client credentials). */
  const exchange = (subjectToken: string, fields: Record<string, string> = {}, headers: Record<string, string> = {}) =>
    postForm(broker, "/oauth2/token", {
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      ...fields,
    }, headers);

  it("narrows methods, paths and lifetime; the child works within them and nowhere else", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy", ttlSeconds: 600 });
    const res = await exchange(parent, { scope: "method:GET path:/v1/projects/*", authorization_details: JSON.stringify([{ type: "keyward_grant", ttlSeconds: 120 }]) });
    expect(res.status).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 120, scope: "api:GET", issued_token_type: ACCESS_TOKEN_TYPE });
    const child = res.body.access_token as string;

    const p = claimsOf(parent);
    const c = claimsOf(child);
    expect(c).toMatchObject({
      sub: alice.id,
      client_id: alice.clientId,
      grant: p.grant,
      cap: { upstream: "api", methods: ["GET"], paths: ["/v1/projects/*"] },
      act: { sub: alice.id, client_id: alice.clientId },
      chain: [p.jti],
      root_iat: p.iat,
    });
    expect(c.exp as number).toBeLessThanOrEqual(p.exp as number);

    expect((await call("get", "/v1/projects/p1", child)).status).toBe(200);
    expect((await call("post", "/v1/projects/p1", child)).status).toBe(403);
    expect((await call("get", "/v1/volumes/v1", child)).status).toBe(403);
    expect((await call("delete", "/v1/projects/p1", parent)).status).toBe(200);

    const issued = await broker.admin("get", "/v1/audit?kind=token.issued&limit=5");
    expect(issued.body.events[0]).toMatchObject({ jti: c.jti, details: { exchangedFrom: p.jti } });
  });

  it("without asking, the child gets the parent's capabilities for at most the life the parent has left", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy", ttlSeconds: 60 });
    const res = await exchange(parent);
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBeLessThanOrEqual(60);
    expect(claimsOf(res.body.access_token).exp as number).toBeLessThanOrEqual(claimsOf(parent).exp as number);
    expect(claimsOf(res.body.access_token).cap).toEqual(claimsOf(parent).cap);
  });

  it("refuses to widen: a method, a path or a lifetime beyond the parent's", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy", methods: ["GET"], paths: ["/v1/projects/**"], ttlSeconds: 300 });
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ scope: "method:POST" }, "invalid_scope", /parent token does not allow POST/],
      [{ scope: "path:/v1/**" }, "invalid_scope", /parent token does not cover path \/v1\/\*\*/],
      [{ authorization_details: JSON.stringify([{ type: "keyward_grant", ttlSeconds: 301 }]) }, "invalid_scope", /parent token's maximum/],
      [{ scope: "grant:deploy" }, "invalid_scope", /keeps its grant/],
      [{ requested_token_type: "urn:ietf:params:oauth:token-type:refresh_token" }, "invalid_request", /requested_token_type/],
      [{ audience: "https://elsewhere.test" }, "invalid_request", /audience/],
    ];
    for (const [fields, error, description] of cases) {
      const res = await exchange(parent, fields);
      expect(res.status, JSON.stringify(fields)).toBe(400);
      expect(res.body.error, JSON.stringify(fields)).toBe(error);
      expect(res.body.error_description).toMatch(description);
    }
    const refused = await broker.admin("get", "/v1/audit?kind=token.refused&limit=10");
    expect(refused.body.events.map((e: { reason: string; details: { reason?: string } }) => [e.reason, e.details.reason])).toContainEqual([
      "widening_refused",
      "the parent token does not allow POST",
    ]);
  });

  it("a child can be exchanged again, never wider than itself", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy" });
    const child = (await exchange(parent, { scope: "method:GET method:POST" })).body.access_token as string;
    const grandchild = await exchange(child, { scope: "method:GET" });
    expect(grandchild.status).toBe(200);
    expect(claimsOf(grandchild.body.access_token).chain).toEqual([claimsOf(parent).jti, claimsOf(child).jti]);
    expect((await exchange(child, { scope: "method:DELETE" })).body.error).toBe("invalid_scope");
  });

  it("revoking the parent revokes every descendant, on the very next call", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy" });
    const child = (await exchange(parent)).body.access_token as string;
    const grandchild = (await exchange(child, { scope: "method:GET" })).body.access_token as string;
    const sibling = await tokenFor(broker, alice, { grant: "deploy" });
    for (const t of [parent, child, grandchild]) expect((await call("get", "/v1/x", t)).status).toBe(200);

    expect((await broker.admin("post", "/v1/revocations", { jti: claimsOf(parent).jti })).status).toBe(201);
    for (const t of [parent, child, grandchild]) {
      const res = await call("get", "/v1/x", t);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("token_revoked");
    }
    expect((await call("get", "/v1/x", sibling)).status).toBe(200);
    // ...and a revoked token cannot be exchanged any more.
    const again = await exchange(child);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe("invalid_request");
  });

  it("revoking a child leaves its parent alone; an agent may revoke its own child via /oauth2/revoke", async () => {
    const parent = await tokenFor(broker, bob, { grant: "deploy" });
    const child = (await exchange(parent)).body.access_token as string;
    const res = await postForm(broker, "/oauth2/revoke", { token: child }, { authorization: basic(bob.clientId, bob.clientSecret) });
    expect(res.status).toBe(200);
    expect((await call("get", "/v1/x", child)).status).toBe(401);
    expect((await call("get", "/v1/x", parent)).status).toBe(200);
  });

  it("client authentication is optional, but if given it must be the parent's client", async () => {
    const parent = await tokenFor(broker, alice, { grant: "deploy" });
    expect((await exchange(parent, {}, { authorization: basic(alice.clientId, alice.clientSecret) })).status).toBe(200);
    const asBob = await exchange(parent, {}, { authorization: basic(bob.clientId, bob.clientSecret) });
    expect(asBob.status).toBe(400);
    expect(asBob.body.error).toBe("invalid_request");
    const wrongSecret = await exchange(parent, {}, { authorization: basic(alice.clientId, "kws_wrong") });
    expect(wrongSecret.status).toBe(401);
    expect((await exchange(parent, { client_id: bob.clientId })).body.error).toBe("invalid_request");
  });

  it("garbage, forged or expired subject tokens are refused", async () => {
    for (const bad of ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."]) {
      const res = await exchange(bad);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe("invalid_request");
    }
  });

  it("works through the client library's generic grant request", async () => {
    const as = await discover(broker);
    const parent = await tokenFor(broker, alice, { grant: "deploy" });
    const client = { client_id: alice.clientId };
    const response = await oauth.genericTokenEndpointRequest(
      as,
      client,
      oauth.None(),
      TOKEN_EXCHANGE,
      { subject_token: parent, subject_token_type: ACCESS_TOKEN_TYPE, scope: "method:GET" },
      clientOptions(broker),
    );
    const result = await oauth.processGenericTokenEndpointResponse(as, client, response);
    expect(result.scope).toBe("api:GET");
    expect((await call("get", "/v1/x", result.access_token)).status).toBe(200);
  });
});
