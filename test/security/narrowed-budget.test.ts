import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";
import { statusOf, title } from "./cases.js";

/**
 * A large budget is spent from leases each replica reserves ahead (docs/policy.md). Lowering the grant's
 * budget must hold from the next call on, on every replica, whatever units they reserved under the old one.
 */
describe("security: a grant's budget lowered while replicas hold leases of it", () => {
  let store: Store;
  let a: TestBroker;
  let b: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  let grantId: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    a = await startBroker(store);
    b = await startBroker(store);
    await createUpstream(a, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "narrowed-budget-upstream-secret" });
    const agent = await createAgent(a, "agent");
    grantId = (await createGrant(a, { name: "large", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"], budgets: { perGrant: { maxCalls: 1600 } } })).id;
    token = await tokenFor(a, agent, { grant: "large" });
    const unrelated = await createGrant(a, { name: "unrelated", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v2/**"] });
    // One call on each replica: each reserves its unit and a lease of 64 more.
    for (const replica of [a, b]) expect((await call(replica, "/v1/before")).status).toBe(200);

    const lowered = await a.admin("patch", `/v1/grants/${grantId}`, { budgets: { perGrant: { maxCalls: 2 } } });
    expect(lowered.status, lowered.text).toBe(200);
    // Both replicas have heard of the change once a revocation made afterwards (awaiting every replica) is answered.
    const probe = await a.admin("post", "/v1/revocations", { grantId: unrelated.id });
    expect(probe.status, probe.text).toBeLessThan(300);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (replica: TestBroker, path: string) => replica.http().get(`/proxy/api${path}`).set("authorization", `Bearer ${token}`);

  it(`${title("TOK-28")}: the next calls on either replica are refused`, async () => {
    const before = upstream.received.length;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) for (const replica of [a, b]) statuses.push((await call(replica, `/v1/after/${i}`)).status);
    expect(statuses).toEqual(statuses.map(() => statusOf("TOK-28")));
    expect(upstream.received.length).toBe(before);
  });

  it(`${title("TOK-28")}: raised again, the budget counts only the calls made, not the units the replicas had reserved`, async () => {
    const raised = await a.admin("patch", `/v1/grants/${grantId}`, { budgets: { perGrant: { maxCalls: 4 } } });
    expect(raised.status, raised.text).toBe(200);
    // Two calls were made in all: two more fit.
    await waitFor(async () => (await call(a, "/v1/again/1")).status === 200, 5000, "the raised budget");
    expect((await call(b, "/v1/again/2")).status).toBe(200);
    expect((await call(a, "/v1/again/3")).status).toBe(statusOf("TOK-28"));
    expect((await call(b, "/v1/again/4")).status).toBe(statusOf("TOK-28"));
  });
});
