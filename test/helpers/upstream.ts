import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type ReceivedRequest = { method: string; url: string; headers: IncomingHttpHeaders; body: string };

/**
 * A real HTTP server on a random loopback port that records every request it receives and answers
 * with a small JSON echo (or with a custom handler).
 */
export async function startUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ url: string; received: ReceivedRequest[]; pending(): number; close(): Promise<void> }> {
  const received: ReceivedRequest[] = [];
  // Requests begun and not yet answered or abandoned: a proxy must not leave any hanging.
  let pending = 0;
  const server = createServer((req, res) => {
    pending++;
    res.on("close", () => pending--);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (handler) return handler(req, res, body);
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "yes" });
      res.end(JSON.stringify({ ok: true, method: req.method, url: req.url }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    pending: () => pending,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
