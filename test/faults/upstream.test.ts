import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { deflateRawSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { freePort } from "../helpers/pg-cluster.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "../security/cases.js";
import { randomBytes } from "node:crypto";
import { masterKeyForms, rawJson, rawRequest, signingPrivateParts, sweepForSecrets } from "../security/harness.js";
import { waitFor } from "../helpers/wait.js";

const TIMEOUT_MS = 1500;
const HUGE_BYTES = 256 * 1024 * 1024;

/**
 * A misbehaving upstream on a raw socket: what it does is picked by the first path segment of the
 * request it gets (`/hang`, `/reset`, `/garbage`, ...), so one server plays every fault.
 */
const compressed = (socket: Socket, coding: string, body: Buffer) =>
  socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: ${coding}\r\nContent-Length: ${body.length}\r\n\r\n`), body]));

async function startFaultyUpstream(): Promise<{ url: string; held: Socket[]; release(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const held: Socket[] = [];
  const behaviours: Record<string, (socket: Socket, request: string) => void> = {
    hang: () => {},
    hold: (socket) => held.push(socket),
    reset: (socket) => socket.resetAndDestroy(),
    "reset-in-headers": (socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/pl", () => socket.resetAndDestroy()),
    "stall-in-body": (socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial body"),
    "short-body": (socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort"),
    "huge-headers": (socket) => socket.end(`HTTP/1.1 200 OK\r\nX-Big: ${"h".repeat(128 * 1024)}\r\nContent-Length: 0\r\n\r\n`),
    garbage: (socket) => socket.end("THIS IS NOT HTTP\r\n\r\n"),
    "bad-status": (socket) => socket.end("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    "no-status": (socket) => socket.end("HTTP/1.1\r\n\r\n"),
    "two-lengths": (socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    "te-and-cl": (socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "nul-header": (socket) => socket.end("HTTP/1.1 200 OK\r\nX-A: b\u0000c\r\nContent-Length: 0\r\n\r\n"),
    "bare-lf-header": (socket) => socket.end("HTTP/1.1 200 OK\r\nX-A: b\nX-B: c\r\nContent-Length: 0\r\n\r\n"),
    "bad-chunk": (socket) => socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    // Bodies that do not decode as their Content-Encoding says: corrupt gzip, raw deflate (no zlib header,
    // as some servers send for `deflate`), gzip followed by bytes that are not another gzip member.
    "bad-gzip": (socket) => compressed(socket, "gzip", Buffer.concat([gzipSync("hello").subarray(0, 10), Buffer.from("not deflate data")])),
    "raw-deflate": (socket) => compressed(socket, "deflate", deflateRawSync("hello")),
    // A chunked body that breaks its framing right after echoing the request's credential.
    "bad-chunk-echo": (socket, request) => {
      const credential = /^authorization: (.*)$/im.exec(request)?.[1] ?? "";
      socket.end(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz you sent ${credential}\r\n0\r\n\r\n`);
    },
    "gzip-trailing": (socket) => compressed(socket, "gzip", Buffer.concat([gzipSync("hello"), Buffer.from("trailing bytes")])),
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.once("data", (chunk: Buffer) => {
      const path = /^[A-Z]+ \/([^/ ?]*)/.exec(chunk.toString("latin1"))?.[1] ?? "";
      (behaviours[path] ?? ((s: Socket) => s.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")))(socket, chunk.toString("latin1"));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    release: () => {
      for (const socket of held.splice(0)) socket.end("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld");
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("faults: misbehaving upstreams", () => {
  let store: Store;
  let broker: TestBroker;
  let faulty: Awaited<ReturnType<typeof startFaultyUpstream>>;
  let healthy: Awaited<ReturnType<typeof startUpstream>>;
  let huge: Awaited<ReturnType<typeof startUpstream>>;
  /** How much of the 256 MiB body the huge upstream has written so far. */
  let hugeSent = 0;
  const tokens: Record<string, string> = {};
  const secrets: Record<string, string> = {};
  let agent: Awaited<ReturnType<typeof createAgent>>;
  /** Everything the clients got back (bodies of the 256 MiB stream aside), for the secret sweep (SEC-01). */
  const responses: string[] = [];

  beforeAll(async () => {
    faulty = await startFaultyUpstream();
    healthy = await startUpstream();
    huge = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(HUGE_BYTES) });
      const chunk = Buffer.alloc(64 * 1024, 7);
      hugeSent = 0;
      const pump = () => {
        while (hugeSent < HUGE_BYTES) {
          hugeSent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    store = newStore();
    broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS), LOG_LEVEL: "warn" });
    agent = await createAgent(broker, "agent");
    const upstreams = { faulty: faulty.url, healthy: healthy.url, huge: huge.url, down: `http://127.0.0.1:${await freePort()}` };
    for (const [name, baseUrl] of Object.entries(upstreams)) {
      secrets[name] = `secret-of-${name}-${randomBytes(12).toString("hex")}`;
      await createUpstream(broker, { name, baseUrl, environment: "staging", secret: secrets[name] });
      await createGrant(broker, { name, agents: [agent.id], upstream: name, methods: ["GET"], paths: ["/**"] });
      tokens[name] = await tokenFor(broker, agent, { grant: name });
    }
  });

  afterAll(async () => {
    await broker?.close();
    await Promise.all([faulty?.close(), healthy?.close(), huge?.close()]);
    await store?.drop();
  });

  const call = async (upstream: string, path: string) => {
    const started = Date.now();
    const res = await broker.http().get(`/proxy/${upstream}${path}`).set("authorization", `Bearer ${tokens[upstream]}`);
    responses.push(JSON.stringify(res.headers) + "\n" + res.text);
    return { status: res.status, code: res.body?.error?.code as string | undefined, text: res.text, ms: Date.now() - started };
  };

  it(title("FLT-05"), async () => {
    const res = await call("down", "/v1/x");
    expect(res.status).toBe(statusOf("FLT-05"));
    expect(res.code).toBe("upstream_unreachable");
    expect(res.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|secret-of/);
  });

  it(title("FLT-06"), async () => {
    const res = await call("faulty", "/hang");
    expect(res.status).toBe(statusOf("FLT-06"));
    expect(res.code).toBe("upstream_timeout");
    expect(res.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(res.ms).toBeLessThan(TIMEOUT_MS + 2000);
  });

  it(title("FLT-07"), async () => {
    const port = Number(new URL(broker.url).port);
    for (const path of ["/stall-in-body", "/short-body"]) {
      const res = await rawRequest(
        port,
        `GET /proxy/faulty${path} HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer ${tokens.faulty}\r\n\r\n`,
        { waitMs: TIMEOUT_MS + 4000, record: responses },
      );
      expect(res.ms, path).toBeLessThan(TIMEOUT_MS + 2000);
      if (res.status === 502 || res.status === 504) {
        // Nothing had been relayed: a small body (its length declared) is read whole before it goes out,
        // so a stall is a clean 504 and a short body a clean 502.
        expect(rawJson(res)?.error?.code, path).toBe(path === "/stall-in-body" ? "upstream_timeout" : "upstream_unreachable");
        expect(res.status, path).toBe(path === "/stall-in-body" ? 504 : 502);
      } else {
        // The status was already on its way: what follows is cut, never completed or left hanging.
        expect(res.status, path).toBe(200);
        expect(res.closed, path).toBe(true);
        const body = res.text.slice(res.text.indexOf("\r\n\r\n") + 4);
        expect(body, path).not.toMatch(/0\r\n\r\n$/);
      }
    }
    expect((await call("healthy", "/v1/x")).status).toBe(200);
  });

  it(title("FLT-08"), async () => {
    for (const path of ["/reset", "/reset-in-headers"]) {
      const res = await call("faulty", path);
      expect(res.status, path).toBe(statusOf("FLT-08"));
      expect(res.code, path).toBe("upstream_unreachable");
    }
  });

  it(title("FLT-09"), async () => {
    const res = await call("faulty", "/huge-headers");
    expect(res.status).toBe(statusOf("FLT-09"));
    expect(res.code).toBe("upstream_unreachable");
  });

  it(title("FLT-10"), async () => {
    for (const path of ["/garbage", "/bad-status", "/no-status", "/two-lengths", "/te-and-cl", "/nul-header", "/bare-lf-header"]) {
      const res = await call("faulty", path);
      expect(res.status, path).toBe(statusOf("FLT-10"));
      expect(res.code, path).toBe("upstream_unreachable");
      expect(res.text, path).not.toMatch(/NOT HTTP|hello|chunked|\u0000/);
    }
    // A body that turns out malformed after the status: the response is cut, the broker carries on.
    const port = Number(new URL(broker.url).port);
    const badChunk = await rawRequest(port, `GET /proxy/faulty/bad-chunk HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer ${tokens.faulty}\r\n\r\n`, {
      waitMs: TIMEOUT_MS + 4000,
      record: responses,
    });
    // Typically the failure comes before any byte was relayed: a clean 502. Had the status already gone
    // out, the connection would be cut instead of the response completed.
    if (badChunk.status === 502) expect(rawJson(badChunk)?.error?.code).toBe("upstream_unreachable");
    else expect([badChunk.status, badChunk.closed]).toEqual([200, true]);
    expect(badChunk.text).not.toMatch(/hello|\r\n0\r\n\r\n$/);
    expect((await call("healthy", "/v1/x")).status).toBe(200);
  });

  it(title("FLT-34"), async () => {
    for (const path of ["/bad-gzip", "/raw-deflate", "/gzip-trailing"]) {
      const res = await call("faulty", path);
      expect(res.status, path).toBe(statusOf("FLT-34"));
      expect(res.code, path).toBe("upstream_unreachable");
      expect(res.text, path).not.toMatch(/hello|trailing|Z_|zlib|header check/);
    }
    expect((await call("healthy", "/v1/x")).status).toBe(200);
  });

  it(title("FLT-35"), async () => {
    const logged = broker.logs.length;
    const res = await call("faulty", "/bad-chunk-echo");
    expect(res.status).toBe(statusOf("FLT-35"));
    expect(res.code).toBe("upstream_unreachable");
    expect(res.text).not.toContain(secrets.faulty);
    // The failure is logged (LOG_LEVEL warn), without the bytes the parser stopped at.
    const lines = await waitFor(() => broker.logs.slice(logged).filter((line) => line.includes("HTTPParserError")), 2000, "the parser error's log line");
    for (const line of lines) expect(line).not.toContain(secrets.faulty);
  });

  it(title("FLT-11"), { timeout: 60_000 }, async () => {
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let aheadAfterPause = Infinity;
    try {
      const res = await request(`${broker.url}/proxy/huge/big`, { headers: { authorization: `Bearer ${tokens.huge}` } });
      expect(res.statusCode).toBe(statusOf("FLT-11"));
      responses.push(JSON.stringify(res.headers));
      let received = 0;
      let paused = false;
      for await (const chunk of res.body) {
        received += (chunk as Buffer).length;
        // A slow reader for a moment: backpressure must hold the upstream back, not the broker's memory.
        if (!paused && received > 32 * 1024 * 1024) {
          paused = true;
          await new Promise((r) => setTimeout(r, 500));
          aheadAfterPause = hugeSent - received;
        }
      }
      expect(received).toBe(HUGE_BYTES);
    } finally {
      clearInterval(sampler);
    }
    // What the upstream got ahead of the reader is what sits in between: the streams' high-water marks and
    // two TCP connections' buffers (measured ~10 MiB; the kernel may grow a receive buffer to 32 MiB here).
    // A broker that buffered would let the upstream finish during the pause: ~220 MiB ahead.
    const aheadMiB = aheadAfterPause / 1024 / 1024;
    const growthMiB = (peak - baseline) / 1024 / 1024;
    console.log(`256 MiB stream: upstream ${aheadMiB.toFixed(1)} MiB ahead of the paused reader; RSS +${growthMiB.toFixed(1)} MiB`);
    expect(aheadMiB).toBeLessThan(64);
    // The process holds the upstream and the client as well as the broker, and its garbage (every chunk
    // is a new buffer in the broker and the client) is collected when V8 decides: the bound is loose
    // (measured 55-72 MiB on Node 20, 129 on Node 24, whose V8 leaves socket buffers longer), the precise
    // check is the one above. A broker that held the body would add all of its 256 MiB.
    expect(growthMiB).toBeLessThan(192);
  });

  it(title("FLT-12"), async () => {
    // 20 calls stuck on one upstream (it holds them until released)...
    let settled = 0;
    const holding = Array.from({ length: 20 }, () => call("faulty", "/hold").finally(() => settled++));
    await waitFor(() => faulty.held.length === 20, 10_000, "20 requests held by the faulty upstream");
    // ...and the other upstreams are answered meanwhile.
    const healthyCalls = await Promise.all(Array.from({ length: 5 }, () => call("healthy", "/v1/x")));
    expect(settled).toBe(0);
    for (const res of healthyCalls) expect(res.status).toBe(statusOf("FLT-12"));
    faulty.release();
    for (const res of await Promise.all(holding)) expect(res.status).toBe(200);
  });

  it(title("SEC-01"), async () => {
    // Failed upstream calls are logged with their errors: none carries the secret that was injected.
    const prisma = broker.keyward.db.prisma;
    sweepForSecrets({
      never: {
        ...Object.fromEntries(Object.entries(secrets).map(([name, secret]) => [`upstream secret ${name}`, secret])),
        ...Object.fromEntries(masterKeyForms(store.masterKey).map((form, i) => [`master key (form ${i})`, form])),
        ...Object.fromEntries((await signingPrivateParts(prisma, store.masterKey)).map((d, i) => [`signing private key ${i}`, d])),
      },
      notLogged: {
        "the client secret": agent.clientSecret,
        "the admin key": broker.adminKey,
        ...Object.fromEntries(Object.entries(tokens).map(([name, token]) => [`agent token ${name}`, token])),
      },
      responses,
      logs: broker.logs,
      audit: await prisma.auditEvent.findMany(),
      atLeast: { responses: 20, logs: 1 },
    });
  });
});
