import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createCaCertificate, issueHostCertificate, newRsaKeyPem } from "../../src/forward-proxy/x509.js";
import type { ReceivedRequest } from "./upstream.js";

/** A private CA for test upstreams, unrelated to Keyward's own: what an internal API would have. */
export function privateCa(): { certPem: string; keyPem: string } {
  const keyPem = newRsaKeyPem();
  return { keyPem, certPem: createCaCertificate(keyPem, "Test upstream private CA", new Date(), 30) };
}

/**
 * A real HTTPS server on a random loopback port, its certificate (for `localhost`) from its own private
 * CA, recording every request (with its raw body) and answering a JSON echo unless given a handler.
 */
export async function startTlsUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
): Promise<{ url: string; port: number; caPem: string; received: (ReceivedRequest & { rawBody: Buffer })[]; close(): Promise<void> }> {
  const ca = privateCa();
  const keyPem = newRsaKeyPem();
  const certPem = issueHostCertificate(ca, keyPem, "localhost", new Date(), 30);
  const received: (ReceivedRequest & { rawBody: Buffer })[] = [];
  const server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: rawBody.toString("utf8"), rawBody });
      if (handler) return handler(req, res, rawBody);
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "yes" });
      res.end(JSON.stringify({ ok: true, method: req.method, url: req.url }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://localhost:${port}`,
    port,
    caPem: ca.certPem,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
