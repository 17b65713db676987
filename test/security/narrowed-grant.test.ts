import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { ACCESS_TOKEN_TYPE, claimsOf, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";
import { statusOf, title } from "./cases.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

/**
 * A token carries the methods and paths it was issued with; an admin narrowing its grant afterwards must
 * take them away from it, from the children it was exchanged for, and from the children it is exchanged
 * for later. Through the real API: tokens, RFC 8693 exchange, PATCH of the grant, the proxy.
 */
describe("security: tokens under a grant narrowed after they were issued", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Agent;
  let grantId: string;
  let parent: string;
  let child: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "narrowed-grant-upstream-secret" });
    agent = await createAgent(broker, "agent");
    grantId = (await createGrant(broker, { name: "wide", agents: [agent.id], upstream: "api", methods: ["GET", "POST", "DELETE"], paths: ["/v1/**"] })).id;
    parent = await tokenFor(broker, agent, { grant: "wide" });
    const exchanged = await exchange(parent);
    expect(exchanged.status, exchanged.text).toBe(200);
    child = exchanged.body.access_token as string;
    expect(claimsOf(child).cap).toMatchObject({ methods: ["GET", "POST", "DELETE"], paths: ["/v1/**"] });
    // Both work before the grant is narrowed.
    expect((await call("delete", "/v1/admin/x", parent)).status).toBe(200);
    expect((await call("delete", "/v1/admin/x", child)).status).toBe(200);

    const narrowed = await broker.admin("patch", `/v1/grants/${grantId}`, { methods: ["GET", "POST"], paths: ["/v1/items/**"] });
    expect(narrowed.status, narrowed.text).toBe(200);
    // The proxy learns of the change through the grant's trigger: wait until it judges by the narrowed grant.
    await waitFor(async () => (await call("get", "/v1/other", parent)).status === 403, 5000, "the narrowed grant to reach the proxy");
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (method: "get" | "post" | "delete", path: string, token: string) =>
    broker.http()[method](`/proxy/api${path}`).set("authorization", `Bearer ${token}`);

  const exchange = (subjectToken: string, fields: Record<string, string> = {}) =>
    postForm(broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, ...fields });

  it.each([
    ["parent", "delete", "/v1/items/1", "method_not_granted"],
    ["parent", "get", "/v1/admin/x", "path_not_granted"],
    ["child", "delete", "/v1/items/1", "method_not_granted"],
    ["child", "get", "/v1/admin/x", "path_not_granted"],
  ] as const)(`${title("TOK-26")}: the %s token's %s %s`, async (which, method, path, code) => {
    const before = upstream.received.length;
    const res = await call(method, path, which === "parent" ? parent : child);
    expect(res.status).toBe(statusOf("TOK-26"));
    expect(res.body.error.code).toBe(code);
    expect(upstream.received.length).toBe(before);
  });

  it(`${title("TOK-26")}: what the narrowed grant still allows goes through for both`, async () => {
    expect((await call("get", "/v1/items/1", parent)).status).toBe(200);
    expect((await call("post", "/v1/items/1", child)).status).toBe(200);
  });

  it.each([
    ["a removed method", { scope: "method:DELETE" }],
    ["a removed path", { scope: "path:/v1/admin/**" }],
    ["the old paths", { scope: "path:/v1/**" }],
  ])(`${title("TOK-27")}: from the parent and from its child, asking for %s`, async (_what, fields) => {
    for (const subject of [parent, child]) {
      const res = await exchange(subject, fields);
      expect(res.status, res.text).toBe(statusOf("TOK-27"));
      expect(res.body.error).toBe("invalid_scope");
      expect(res.headers["keyward-error"]).toBe("widening_refused");
      expect(res.body.access_token).toBeUndefined();
    }
  });

  it(`${title("TOK-27")}: without asking, a new child gets only what its parent and the grant as it stands both allow`, async () => {
    for (const subject of [parent, child]) {
      const res = await exchange(subject);
      expect(res.status, res.text).toBe(200);
      expect(res.body.scope).toBe("api:GET api:POST");
      expect(claimsOf(res.body.access_token).cap).toEqual({ upstream: "api", methods: ["GET", "POST"], paths: ["/v1/items/**"] });
      expect((await call("get", "/v1/items/1", res.body.access_token)).status).toBe(200);
    }
  });

  // Last: it moves the upstream out of the grant's environments, which every call and exchange above needs.
  it(`${title("TOK-29")}: after the upstream moved to an environment the grant does not cover`, async () => {
    const moved = await broker.admin("patch", "/v1/upstreams/api", { environment: "production" });
    expect(moved.status, moved.text).toBe(200);
    await waitFor(async () => (await call("get", "/v1/items/1", parent)).status === 403, 5000, "the changed grant to reach the proxy");
    for (const subject of [parent, child]) {
      const res = await exchange(subject);
      expect(res.status, res.text).toBe(statusOf("TOK-29"));
      expect(res.body.error).toBe("invalid_request");
      expect(res.headers["keyward-error"]).toBe("environment_not_granted");
      expect(res.body.access_token).toBeUndefined();
    }
    const audit = await broker.admin("get", "/v1/audit?kind=token.refused&limit=10");
    expect(audit.body.events.filter((e: { reason: string }) => e.reason === "environment_not_granted")).toHaveLength(2);
  });
});
