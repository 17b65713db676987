import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { title } from "./cases.js";
import { newStore, type Store } from "../helpers/broker.js";
import { answersWithin, startBrokerProcessAfter, type BrokerProcess } from "../helpers/broker-process.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * The form-body method-override scan against bodies built to make it slow. The broker runs in a process
 * of its own: a scan that blocked its event loop would then fail this test on a timeout instead of
 * stalling the test runner with it.
 */
describe("security: the form override scan stays linear", () => {
  let store: Store;
  let broker: BrokerProcess;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    ({ broker, made: token } = await startBrokerProcessAfter(store, async (setup) => {
      await createUpstream(setup, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "sk-form-scan-secret-0123456789" });
      const agent = await createAgent(setup, "agent");
      // GET and POST only: a POST could be overridden into a method the grant lacks, so its form body is scanned.
      await createGrant(setup, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET", "POST"], paths: ["/v1/**"] });
      return tokenFor(setup, agent, { grant: "g" });
    }));
  });
  afterAll(async () => {
    await broker?.kill();
    await upstream?.close();
    await store?.drop();
  });

  it(title("REQ-34"), async () => {
    for (const body of ["name" + " ".repeat(400_000), "name" + " ".repeat(200_000) + "*" + " ".repeat(200_000)]) {
      const before = upstream.received.length;
      const started = Date.now();
      const call = fetch(`${broker.url}/proxy/api/v1/uploads`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "multipart/form-data; boundary=b" },
        body,
        signal: AbortSignal.timeout(10_000),
      }).then((r) => ({ status: r.status, ms: Date.now() - started }), (err: Error) => ({ status: `no answer: ${err.name}`, ms: Date.now() - started }));
      // Once the body has arrived and is being scanned, other calls are still answered.
      await new Promise((r) => setTimeout(r, 500));
      const healthy = await answersWithin(broker, 3000);
      const { status, ms } = await call;
      // No override in it: decided at once and forwarded as sent.
      expect(status).toBe(200);
      expect(ms).toBeLessThan(3000);
      expect(healthy).toBe(true);
      expect(upstream.received.slice(before).map((r) => r.body.length)).toEqual([body.length]);
    }
  });
});
