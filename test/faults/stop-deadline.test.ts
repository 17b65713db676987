import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, type Store } from "../helpers/broker.js";
import { startBrokerProcessAfter, type BrokerProcess } from "../helpers/broker-process.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { openDatabase } from "../../src/db/database.js";
import { title } from "../security/cases.js";

const SHUTDOWN_TIMEOUT_MS = 2_000;

/**
 * A call that never ends (an event stream an agent follows) and a SIGTERM: the stop must not wait for it
 * until the supervisor's SIGKILL, which would lose its outcome event and leave the database unstopped.
 */
describe("faults: stopping the broker while a call streams without end", () => {
  let store: Store;
  let broker: BrokerProcess;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === "/v1/slow") {
        setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'), 500);
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      const tick = setInterval(() => res.write("data: tick\n\n"), 100);
      res.on("close", () => clearInterval(tick));
    });
    store = newStore();
    ({ broker, made: token } = await startBrokerProcessAfter(
      store,
      async (setup) => {
        await createUpstream(setup, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "sk-stop-deadline-0123456789" });
        const agent = await createAgent(setup, "agent");
        await createGrant(setup, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
        return tokenFor(setup, agent, { grant: "g" });
      },
      { KEYWARD_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) },
    ));
  });
  afterAll(async () => {
    await broker?.kill().catch(() => {});
    await upstream?.close();
    await store?.drop();
  });

  it(title("FLT-53"), { timeout: 60_000 }, async () => {
    const call = (path: string) => fetch(`${broker.url}/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` } });
    const stream = await call("/v1/events");
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read();
    const startedAt = Date.now();
    const slow = call("/v1/slow");
    await new Promise((r) => setTimeout(r, 100));
    const stopped = broker.stop();
    // A call that ends by itself within the deadline is answered whole, as before (FLT-14).
    const answered = await slow;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toEqual({ ok: true });
    // The endless one is cut at the deadline, and the broker stops cleanly, well before a supervisor's SIGKILL.
    const exitCode = await Promise.race([stopped, new Promise<string>((r) => setTimeout(() => r("still running"), SHUTDOWN_TIMEOUT_MS + 8_000))]);
    expect(exitCode).toBe(0);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT_MS - 200);
    await expect((async () => {
      for (;;) if ((await reader.read()).done) return "ended";
    })()).rejects.toThrow();

    // Its outcome is on record, as a response cut short; the slow call's too.
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      const rows = await db.prisma.auditEvent.findMany({ where: { kind: "proxy.response" }, select: { path: true, reason: true, status: true } });
      expect(rows).toEqual(
        expect.arrayContaining([
          { path: "/v1/events", reason: "response_incomplete", status: 200 },
          { path: "/v1/slow", reason: null, status: 200 },
        ]),
      );
    } finally {
      await db.close();
    }
  });
});
