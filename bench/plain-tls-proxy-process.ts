/**
 * The baseline of the tunnel benchmark (bench/tunnel.ts): the TLS-terminating forward proxy one would
 * write without Keyward. `CONNECT host:port` is answered 200 at once; inside, TLS with the certificate
 * it was given for the host (BENCH_TLS_CERT, BENCH_TLS_KEY); each request is forwarded to
 * https://host:port over TLS, verified against BENCH_UPSTREAM_CA, on keep-alive connections.
 * No authentication, no checks, no audit, no logging.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Agent, request } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createSecureContext, TLSSocket } from "node:tls";
import { serveChild } from "./child.js";

const { BENCH_TLS_CERT: cert, BENCH_TLS_KEY: key, BENCH_UPSTREAM_CA: ca } = process.env;
if (!cert || !key || !ca) throw new Error("BENCH_TLS_CERT, BENCH_TLS_KEY and BENCH_UPSTREAM_CA must be set");

const secureContext = createSecureContext({ cert, key });
const upstreamAgent = new Agent({ keepAlive: true, ca, maxSockets: 256 });
const tunnels = new WeakMap<Socket, { host: string; port: number }>();

const inner = createServer((req: IncomingMessage, res: ServerResponse) => {
  const origin = tunnels.get(req.socket)!;
  const out = request({ ...origin, method: req.method, path: req.url, headers: req.headers, agent: upstreamAgent }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
    answer.pipe(res);
  });
  out.on("error", () => res.destroy());
  req.pipe(out);
});

const outer = createServer((_req, res) => res.writeHead(405).end());
outer.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  const authority = req.url ?? "";
  const colon = authority.lastIndexOf(":");
  socket.on("error", () => socket.destroy());
  socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  if (head.length > 0) socket.unshift(head);
  const tls = new TLSSocket(socket as Socket, { isServer: true, secureContext });
  tls.on("error", () => tls.destroy());
  tunnels.set(tls, { host: authority.slice(0, colon), port: Number(authority.slice(colon + 1)) });
  inner.emit("connection", tls);
});

outer.listen(0, "127.0.0.1", () => {
  serveChild((outer.address() as AddressInfo).port, {}, async () => {
    inner.closeAllConnections();
    outer.closeAllConnections();
    upstreamAgent.destroy();
    await new Promise<void>((resolve) => outer.close(() => resolve()));
  });
});
