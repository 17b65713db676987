import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "./cases.js";

const PAUSE_MS = 600;

/**
 * A streamed answer's bytes are held back between chunks only where a secret form could still be
 * completing. If what is held depended on whether the bytes could begin the injected secret, an agent
 * could have an upstream echo its guesses, each at the end of a write followed by a pause, and read from
 * when the echo arrives whether the guess begins the secret: the credential, a byte at a time (measured:
 * a 16-byte key and its base64 forms in 4,087 calls). Real HTTP: a streaming upstream, the broker, a
 * client timing the first body byte.
 */
describe("security: when a streamed answer's bytes reach the agent", () => {
  const secret = "sk-live-PROBE-0123456789";
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    // Echoes ?q= in a chunked answer, then pauses before it ends, as a slow or streaming API does.
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write(`data:${new URL(req.url!, "http://x").searchParams.get("q")}`);
      setTimeout(() => res.end("\n"), PAUSE_MS);
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "echo", baseUrl: upstream.url, environment: "staging", secret });
    const agent = await createAgent(broker, "guesser");
    await createGrant(broker, { name: "echo-grant", agents: [agent.id], upstream: "echo", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "echo-grant" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  /** Milliseconds from the request until the echo of the guess has reached the agent whole, and the body. */
  const echoed = (guess: string) =>
    new Promise<{ ms: number; body: string }>((resolve, reject) => {
      const sentAt = performance.now();
      const req = httpRequest(`${broker.url}/proxy/echo/stream?q=${encodeURIComponent(guess)}`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
        let ms: number | undefined;
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
          if (body.includes(guess)) ms ??= performance.now() - sentAt;
        });
        res.on("end", () => resolve({ ms: ms!, body }));
      });
      req.on("error", reject).end();
    });

  it(title("REQ-57"), async () => {
    // Two guesses that begin forms of the secret, two that do not.
    const guesses = ["sk-live-P", "QmVhcmVy", "zz-zzzz-Z", "QmVhcmVz"];
    const timings = [];
    for (const guess of guesses) timings.push({ guess, ...(await echoed(guess)) });
    for (const { guess, body } of timings) expect(body).toBe(`data:${guess}\n`);
    // Before: "sk-live-P" and "QmVhcmVz" arrived after the pause (≈600 ms), the others at once.
    const held = timings.map((t) => t.ms > PAUSE_MS / 2);
    expect(new Set(held).size, JSON.stringify(timings)).toBe(1);
  });
});
