import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf, title } from "./cases.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Query deny rules against the readings a lenient upstream applies to a query (src/policy/query.ts
 * readQueryLeniently): `;` as a separator, PHP/Rails arrays, PHP's name mangling, repeated decoding,
 * NFKC. A grant of its own: `deny: [{ query: { force: "*" } }, { query: { dry_run: "false" } }]`.
 */
describe("security: query deny rules", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "sk-query-deny-secret-0123456789" });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, {
      name: "g", agents: [agent.id], upstream: "api", methods: ["GET", "POST"], paths: ["/v1/**"],
      deny: [{ query: { force: "*" } }, { query: { dry_run: "false" } }],
    });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const post = (query: string) => broker.http().post(`/proxy/api/v1/items?${query}`).set("authorization", `Bearer ${token}`);

  it.each([
    "force=1", "FORCE=1", "%66orce=1", "dry_run=false", // the strict reading
    "a=1;force=1", // `;` as a separator (Rack 2, Python < 3.9.2, Go < 1.17, Tomcat)
    "force[]=1", "force[x]=1", // PHP and Rails arrays
    "%2566orce=1", // a server that decodes twice
    "%EF%BD%86orce=1", // full-width ｆ (NFKC)
    "dry.run=false", "dry+run=false", // PHP: `.` and spaces in names become `_`
  ])(`${title("REQ-38")}: ?%s`, async (query) => {
    const before = upstream.received.length;
    const res = await post(query);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual([]);
    expect(res.status).toBe(statusOf("REQ-38"));
    expect(res.body.error.code).toBe("deny_rule");
  });

  it("REQ-38: parameters no reading names force or sets dry_run=false are forwarded as sent", async () => {
    for (const query of ["forced=1&q=force", "dry.run=true", "x[force]=1"]) {
      const res = await post(query);
      expect(res.status, query).toBe(200);
      expect(upstream.received.at(-1)!.url).toBe(`/v1/items?${query}`);
    }
  });
});
