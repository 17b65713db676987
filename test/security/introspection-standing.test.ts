import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { postForm } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "./cases.js";

/**
 * RFC 7662 introspection tells a resource server whether a token is active. A token whose grant no
 * longer lets it make any call (the agent taken out of it, its upstream moved to an environment the grant
 * does not cover, approval now required) is refused by the proxy on every call, and must not be reported
 * active: through the real API, admin changes, the proxy, the endpoint. (Deleting a grant revokes its
 * tokens, which introspection already reported.)
 */
describe("security: introspection of a token whose grant changed since it was issued", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const introspect = async (token: string) => {
    const res = await postForm(broker, "/oauth2/introspect", { token }, { authorization: `Bearer ${TEST_ADMIN_KEY}` });
    expect(res.status, res.text).toBe(200);
    return res.body as { active: boolean };
  };
  const call = (upstreamName: string, token: string) => broker.http().get(`/proxy/${upstreamName}/v1/items`).set("authorization", `Bearer ${token}`);

  /** A fresh upstream, agent and grant; the token works and is active before `change`. */
  const scenario = async (name: string) => {
    await createUpstream(broker, { name, baseUrl: upstream.url, environment: "staging", secret: `${name}-upstream-secret` });
    const agent = await createAgent(broker, `${name}-agent`);
    const other = await createAgent(broker, `${name}-other`);
    const grant = await createGrant(broker, { name: `${name}-grant`, agents: [agent.id], upstream: name, methods: ["GET"], paths: ["/v1/**"] });
    const token = await tokenFor(broker, agent, { grant: grant.name });
    expect((await call(name, token)).status).toBe(200);
    expect((await introspect(token)).active).toBe(true);
    return { grant, token, other };
  };

  it.each([
    ["the agent taken out of the grant", "agent_not_in_grant"],
    ["the upstream moved to an environment the grant does not cover", "environment_not_granted"],
    ["the grant now requiring a human's approval", "approval_required"],
  ] as const)(`${title("TOK-37")}: %s`, async (change, code) => {
    const name = `api-${code.replaceAll("_", "-")}`;
    const { grant, token, other } = await scenario(name);
    const res =
      code === "agent_not_in_grant" ? await broker.admin("patch", `/v1/grants/${grant.id}`, { agents: [other.id] })
      : code === "environment_not_granted" ? await broker.admin("patch", `/v1/upstreams/${name}`, { environment: "production" })
      : await broker.admin("patch", `/v1/grants/${grant.id}`, { requiresApproval: true });
    expect(res.status, `${change}: ${res.text}`).toBeLessThan(300);
    const refused = await call(name, token);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe(code);
    // Before: { active: true, scope, cap, … }, the claims as issued.
    expect(await introspect(token)).toEqual({ active: false });
  });
});
