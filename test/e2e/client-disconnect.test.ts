import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";

/** A proxied GET whose client goes away once it has waited `afterMs`, or once the response headers arrive. */
function callAndLeave(broker: TestBroker, path: string, token: string, afterMs: number | "headers"): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(`${broker.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    req.on("response", () => afterMs === "headers" && req.destroy());
    req.on("error", () => {});
    req.on("close", () => resolve());
    if (afterMs !== "headers") setTimeout(() => req.destroy(), afterMs);
    req.end();
  });
}

// The broker must not keep paying for calls whose agent has gone, nor hold their responses so that it
// cannot shut down (bench/RESULTS.md: close() hung after an overloaded run whose clients gave up).
describe("an agent that leaves before its response", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  let closed = false;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === "/never") return; // answers nothing: only the caller's abort ends it
      res.writeHead(200, { "content-type": "application/octet-stream" });
      // Larger than every buffer on the way: the response stays in flight until it is read or destroyed.
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      const more = () => {
        while (sent < 256 && res.write(chunk)) sent++;
        if (sent >= 256) res.end();
        else res.once("drain", more);
      };
      more();
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "disconnect-test-secret" });
    const agent = await createAgent(broker, "leaver");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });

  afterAll(async () => {
    if (!closed) await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("aborts the upstream call, and audits why", async () => {
    await callAndLeave(broker, "/proxy/api/never", token, 300);
    await waitFor(() => upstream.received.some((r) => r.url === "/never"), 5_000, "the call to reach the upstream");
    await waitFor(() => upstream.pending() === 0, 2_000, "the upstream to see the call abandoned");
    await waitFor(async () => {
      const res = await broker.admin("get", "/v1/audit?kind=proxy.response&limit=1");
      return res.body.events[0]?.reason === "request_aborted";
    }, 2_000, "the request_aborted audit event");
  });

  it("drops responses nobody will read, so the broker still shuts down promptly", async () => {
    await Promise.all(Array.from({ length: 16 }, () => callAndLeave(broker, "/proxy/api/big", token, "headers")));
    await waitFor(() => upstream.pending() === 0, 5_000, "every abandoned response to be dropped");
    const started = performance.now();
    await broker.close();
    closed = true;
    expect(performance.now() - started).toBeLessThan(3_000);
  });
});
