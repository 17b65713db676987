/**
 * The minimal upstream every target forwards to: a fixed small JSON answer for any path, and
 * N MiB responses streamed in 64 KiB chunks (with backpressure) at /stream/<N>mib. HTTPS when given a
 * certificate and key (BENCH_TLS_CERT, BENCH_TLS_KEY: the tunnel benchmark), else plain HTTP.
 */
import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { serveChild } from "./child.js";

const SMALL = Buffer.from(JSON.stringify({ ok: true, items: [{ id: 1, name: "alpha" }, { id: 2, name: "beta" }] }));
/**
 * 64 KiB of what a streamed API answer looks like (a job's log as JSON lines), the same on every run.
 * Not one repeated byte: a search for the secret's forms finds text like this harder going than a run
 * of `a`s, where a substring search skips almost everything (src/redaction/search.ts).
 */
function logChunk(): Buffer {
  const lines: string[] = [];
  let length = 0;
  let seed = 1;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  while (length < 64 * 1024) {
    const id = next().toString(16).padStart(8, "0");
    const ms = (next() % 5000) / 10;
    lines.push(
      JSON.stringify({
        ts: new Date(1_780_000_000_000 + lines.length * 137).toISOString(),
        level: ["info", "debug", "warn"][next() % 3],
        msg: `${["GET", "POST", "PUT"][next() % 3]} /v1/projects/${next() % 1000}/deployments/${id} ${[200, 201, 404][next() % 3]} ${ms}ms`,
        requestId: Buffer.from(id.repeat(3), "hex").toString("base64"),
      }),
    );
    length += lines.at(-1)!.length + 1;
  }
  return Buffer.from(lines.join("\n").slice(0, 64 * 1024), "latin1");
}
const PLAIN_CHUNK = logChunk();

function chunkWithSecret(secret: string): Buffer {
  const chunk = Buffer.from(PLAIN_CHUNK);
  if (secret.length < 8) return chunk;
  for (const at of [1024, 16 * 1024, 40 * 1024]) chunk.write(secret, at);
  // The head of the secret ends this chunk and its tail starts the next one.
  const half = Math.floor(secret.length / 2);
  chunk.write(secret.slice(0, half), chunk.length - half);
  chunk.write(secret.slice(half), 0);
  return chunk;
}
export const STREAM_BYTES = 1024 * 1024;

/** Requests whose headers arrived but whose body has not ended, by method: a stuck forwarder shows here. */
const waitingForBody = new Map<string, number>();

const { BENCH_TLS_CERT: cert, BENCH_TLS_KEY: key } = process.env;
const createServer = (listener: RequestListener) => (cert && key ? createHttpsServer({ cert, key }, listener) : createHttpServer(listener));

const server = createServer((req, res) => {
  const method = req.method ?? "?";
  waitingForBody.set(method, (waitingForBody.get(method) ?? 0) + 1);
  // Drain any request body first, as a real API would read it.
  req.resume();
  req.on("end", () => {
    waitingForBody.set(method, (waitingForBody.get(method) ?? 1) - 1);
    const stream = /^\/stream\/(\d+)mib(-secrets)?$/.exec(req.url ?? "");
    if (stream) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      // `-secrets`: every chunk repeats the credential the proxy injected, 4 times, once across the chunk
      // boundary, as an upstream echoing its request would: the proxy's redaction has to find each.
      const CHUNK = stream[2] ? chunkWithSecret(String(req.headers.authorization ?? "").replace(/^Bearer /, "")) : PLAIN_CHUNK;
      let left = (Number(stream[1]) * STREAM_BYTES) / CHUNK.length;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(CHUNK)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "content-length": SMALL.length });
    res.end(SMALL);
  });
});
server.keepAliveTimeout = 30_000;

server.listen(0, "127.0.0.1", () => {
  serveChild((server.address() as AddressInfo).port, { waitingForBody: async () => Object.fromEntries(waitingForBody) }, async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
