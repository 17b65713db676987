import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, TEST_ADMIN_KEY, type Store } from "../helpers/broker.js";
import { answersWithin, startBrokerProcessAfter, type BrokerProcess } from "../helpers/broker-process.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "./cases.js";

/**
 * Neither a refusal's size nor an event's follows what the agent sent. A JSON-RPC refusal echoes the call's ids, and
 * the batch is the agent's: 500,000 members fit in the inspection limit (1 MiB). The broker runs in a
 * process of its own, so that the memory and the blocked event loop an unbounded refusal costs are its,
 * and a test can see whether it still answers meanwhile.
 */
describe("security: what a large batch leaves behind (refusal and event size)", () => {
  let store: Store;
  let broker: BrokerProcess;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  const batch = "[" + Array(500_000).fill("1").join(",") + "]";

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    ({ broker, made: token } = await startBrokerProcessAfter(store, async (setup) => {
      await createUpstream(setup, { name: "chain", baseUrl: upstream.url, environment: "staging", protocol: "jsonrpc", secret: "sk-rpc-secret-0123456789" });
      const agent = await createAgent(setup, "agent");
      await createGrant(setup, { name: "rpc", agents: [agent.id], upstream: "chain", methods: ["POST"], paths: ["/rpc"], jsonrpc: { allow: [{ method: "eth_*" }] } });
      return tokenFor(setup, agent, { grant: "rpc" });
    }));
  });

  afterAll(async () => {
    await broker?.kill();
    await upstream?.close();
    await store?.drop();
  });

  it.each([
    ["a short path", "/rpc", "uninspectable"],
    ["a 1,000-character path", `/rpc/${"a".repeat(1000)}`, "path_not_granted"],
  ])(`${title("REQ-39")}: %s`, { timeout: 60_000 }, async (_name, path, code) => {
    const refusal = fetch(`${broker.url}/proxy/chain${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: batch,
      signal: AbortSignal.timeout(30_000),
    }).then(async (res) => ({ status: res.status, code: res.headers.get("keyward-error"), body: Buffer.from(await res.arrayBuffer()) }));
    // Unbounded, the refusal took seconds of the broker's event loop (172 MB, or on the long path a
    // RangeError past V8's string limit and a 500 after ~3 GB): /healthz went unanswered meanwhile.
    await new Promise((r) => setTimeout(r, 200));
    expect(await answersWithin(broker, 2000)).toBe(true);
    const res = await refusal;
    expect(res.status, res.body.subarray(0, 200).toString()).toBe(statusOf("REQ-39"));
    expect(res.code).toBe(code);
    expect(res.body.length).toBeLessThan(64 * 1024);
    // In the JSON-RPC dialect: the members share one id (none), so one error answers them all.
    expect(JSON.parse(res.body.toString())).toEqual([{ jsonrpc: "2.0", id: null, error: expect.objectContaining({ code: -32003 }) }]);
    expect(upstream.received).toHaveLength(0);
    expect(await answersWithin(broker, 2000)).toBe(true);
  });

  it(`${title("REQ-39")}: a method name of 200,000 characters, in the refusal and in its audit event`, async () => {
    const method = "x".repeat(200_000);
    const res = await fetch(`${broker.url}/proxy/chain/rpc`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method }),
    });
    expect(res.status).toBe(statusOf("REQ-39"));
    expect((await res.arrayBuffer()).byteLength).toBeLessThan(64 * 1024);
    const audit = await fetch(`${broker.url}/v1/audit?kind=proxy&decision=deny&limit=10`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
    const events = ((await audit.json()) as { events: { requestId: string; details: { reason: string } }[] }).events;
    const event = events.find((e) => e.requestId === res.headers.get("x-request-id"));
    // The reason quotes the method; the event keeps the head of it, as it keeps the head of a long path.
    expect(event?.details.reason).toContain("xxxx");
    expect(event!.details.reason.length).toBeLessThanOrEqual(2000);
  });

  /** The allow event of the call answered with `res` (its request id). */
  async function allowEventOf(res: Response): Promise<{ reason: string; details: { operations: string[] } }> {
    const audit = await fetch(`${broker.url}/v1/audit?kind=proxy&decision=allow&limit=10`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
    const events = ((await audit.json()) as { events: { requestId: string; reason: string; details: { operations: string[] } }[] }).events;
    return events.find((e) => e.requestId === res.headers.get("x-request-id"))!;
  }

  it(`${title("REQ-41")}: an allowed batch of 20,000 distinct methods`, { timeout: 60_000 }, async () => {
    const members = Array.from({ length: 20_000 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: `eth_m${i}` }));
    const body = JSON.stringify(members);
    expect(body.length).toBeLessThan(1024 * 1024);
    const res = await fetch(`${broker.url}/proxy/chain/rpc`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
    expect(res.status).toBe(statusOf("REQ-41"));
    await res.arrayBuffer();
    expect(upstream.received.at(-1)?.body).toBe(body);
    const event = await allowEventOf(res);
    // Listed whole, the event held 20,000 operations and 20,000 rules: ~1.1 MB for a 0.9 MB body.
    expect(JSON.stringify(event).length).toBeLessThan(16 * 1024);
    expect(event.details.operations).toHaveLength(101);
    expect(event.details.operations.slice(0, 2)).toEqual(["method eth_m0", "method eth_m1"]);
    expect(event.details.operations.at(-1)).toBe("… 19900 more");
    expect(event.reason.length).toBeLessThanOrEqual(2000);
    expect(event.reason.startsWith("POST /rpc; jsonrpc.allow[0] method eth_m0; jsonrpc.allow[0] method eth_m1")).toBe(true);
  });

  it(`${title("REQ-41")}: one allowed method name of 200,000 characters, called 4 times`, async () => {
    const method = `eth_${"x".repeat(200_000)}`;
    const body = JSON.stringify(Array.from({ length: 4 }, (_, id) => ({ jsonrpc: "2.0", id, method })));
    const res = await fetch(`${broker.url}/proxy/chain/rpc`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
    expect(res.status).toBe(statusOf("REQ-41"));
    await res.arrayBuffer();
    const event = await allowEventOf(res);
    expect(JSON.stringify(event).length).toBeLessThan(8 * 1024);
    expect(event.details.operations).toEqual([`method ${method.slice(0, 293)}… ×4`]);
    expect(event.reason.length).toBeLessThanOrEqual(2000);
  });
});
