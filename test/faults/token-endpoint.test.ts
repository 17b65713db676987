import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { statusOf, title } from "../security/cases.js";

const TIMEOUT_MS = 1500;
/** What FLT-19 allows the token exchange: the connect and the headers timeouts, once each. */
const DEADLINE_MS = 2 * TIMEOUT_MS;

/** A token endpoint that answers 200 at once and then sends its JSON body one byte at a time, for ever. */
async function startTricklingTokenEndpoint(): Promise<{ url: string; requests(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("data", () => {
      requests++;
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n');
      // Well inside the body-idle timeout: each byte keeps the body alive.
      const drip = setInterval(() => (socket.destroyed ? clearInterval(drip) : socket.write("1\r\n \r\n")), TIMEOUT_MS / 5);
      socket.on("close", () => {
        clearInterval(drip);
        sockets.delete(socket);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("faults: a token endpoint that never finishes its answer", () => {
  let store: Store;
  let broker: TestBroker | undefined;
  let endpoint: Awaited<ReturnType<typeof startTricklingTokenEndpoint>>;
  let token: string;
  const secret = `cs-trickle-${randomBytes(12).toString("hex")}`;

  beforeAll(async () => {
    endpoint = await startTricklingTokenEndpoint();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS), LOG_LEVEL: "warn" });
    const agent = await createAgent(broker, "agent");
    await createUpstream(broker, {
      name: "trickle",
      baseUrl: "http://127.0.0.1:9",
      environment: "staging",
      secret,
      auth: { type: "oauth2-client-credentials", tokenUrl: `${endpoint.url}/token`, clientId: "client" },
    });
    await createGrant(broker, { name: "trickle", agents: [agent.id], upstream: "trickle", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "trickle" });
  });

  afterAll(async () => {
    // Closing the endpoint first ends any exchange still hanging, so a broker that waits for it can close.
    await endpoint?.close();
    await broker?.close();
    await store?.drop();
  });

  it(title("FLT-19"), { timeout: 30_000 }, async () => {
    const started = Date.now();
    // Three calls share the one token request (single flight): all three wait on it, all three get its failure.
    const results = await Promise.all(
      [1, 2, 3].map(() =>
        broker!
          .http()
          .get("/proxy/trickle/v1/items")
          .set("authorization", `Bearer ${token}`)
          .timeout(4 * DEADLINE_MS)
          .then(
            (res) => ({ status: res.status, code: res.body?.error?.code as string | undefined, text: res.text, ms: Date.now() - started }),
            () => ({ status: 0, code: "client gave up", text: "", ms: Date.now() - started }),
          ),
      ),
    );
    for (const r of results) {
      expect(r, JSON.stringify(r)).toMatchObject({ status: statusOf("FLT-19"), code: "upstream_credential_unavailable" });
      expect(r.ms).toBeLessThan(DEADLINE_MS + 1_500);
      expect(r.text).not.toContain(secret);
    }
    expect(endpoint.requests()).toBe(1);
    // Nothing of the exchange is left holding the broker: it closes at once.
    const closing = Date.now();
    const b = broker!;
    broker = undefined;
    await Promise.race([b.close(), new Promise((_, reject) => setTimeout(() => reject(new Error("the broker did not close")), 5_000))]);
    expect(Date.now() - closing).toBeLessThan(5_000);
    expect(b.logs.join("\n")).not.toContain(secret);
  });
});
