import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Picks the token for a request to this host and port: the grant whose upstream lives there. */
export type TokenFor = (host: string, port: number) => Promise<string>;

/**
 * `keyward run`'s local relay: the child's HTTP(S)_PROXY. A child's environment cannot change after it
 * starts, so it never holds a token: it holds the address of this relay and a per-run password, and the
 * relay adds the current token (refreshed before it expires) to each CONNECT and each plain request it
 * passes on to Keyward's forward proxy. Bytes inside a tunnel are relayed as they are: TLS is between the
 * child and Keyward. Listens on loopback only; without the run's password it answers 407.
 */
export class LocalRelay {
  readonly password = randomBytes(24).toString("base64url");
  readonly #server: Server;
  readonly #sockets = new Set<Duplex>();

  private constructor(
    private readonly forwardProxy: URL,
    private readonly tokenFor: TokenFor,
    private readonly onError: (err: unknown) => void,
  ) {
    this.#server = createServer((req, res) => {
      if (!this.#authorized(req)) return void res.writeHead(407, { "proxy-authenticate": 'Basic realm="keyward-run"' }).end();
      void this.#plain(req, res);
    });
    this.#server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.#connect(req, socket, head));
    this.#server.on("connection", (socket: Socket) => this.#track(socket));
  }

  static async start(forwardProxy: URL, tokenFor: TokenFor, onError: (err: unknown) => void): Promise<LocalRelay> {
    const relay = new LocalRelay(forwardProxy, tokenFor, onError);
    await new Promise<void>((resolve) => relay.#server.listen(0, "127.0.0.1", resolve));
    return relay;
  }

  /** The proxy URL the child gets: this relay, with the run's password (useless outside this run). */
  get proxyUrl(): string {
    return `http://keyward:${this.password}@127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #authorized(req: IncomingMessage): boolean {
    const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(req.headers["proxy-authorization"] ?? "");
    const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : "";
    const given = Buffer.from(decoded.slice(decoded.indexOf(":") + 1));
    const expected = Buffer.from(this.password);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  async #connect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    if (!this.#authorized(req)) {
      return void client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="keyward-run"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    }
    const authority = req.url ?? "";
    const colon = authority.lastIndexOf(":");
    try {
      const token = await this.tokenFor(authority.slice(0, colon).replace(/^\[|\]$/g, "").toLowerCase(), Number(authority.slice(colon + 1)));
      const upstream = connect(Number(this.forwardProxy.port || 80), this.forwardProxy.hostname);
      this.#track(upstream);
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      // The authority goes on exactly as the child sent it: Keyward checks it, not the relay.
      upstream.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Bearer ${token}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      // Keyward's answer (200, 403, 407) and then the tunnel's bytes go back unchanged.
      upstream.pipe(client);
      client.pipe(upstream);
    } catch (err) {
      this.onError(err);
      client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
  }

  /** `GET http://…` from the child: passed on with the token, streamed both ways. */
  async #plain(req: IncomingMessage, res: import("node:http").ServerResponse): Promise<void> {
    try {
      const target = new URL(req.url ?? "");
      const token = await this.tokenFor(target.hostname.replace(/^\[|\]$/g, "").toLowerCase(), Number(target.port || 80));
      const headers = { ...req.headers, "proxy-authorization": `Bearer ${token}` };
      const outgoing = httpRequest({
        host: this.forwardProxy.hostname,
        port: Number(this.forwardProxy.port || 80),
        method: req.method,
        path: req.url,
        headers,
      });
      outgoing.on("response", (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(res);
      });
      outgoing.on("error", () => res.destroy());
      req.pipe(outgoing);
    } catch (err) {
      this.onError(err);
      if (!res.headersSent) res.writeHead(502).end();
    }
  }
}
