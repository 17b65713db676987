import { randomUUID } from "node:crypto";
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { AuditInput } from "../audit/audit.js";
import type { AuditLog } from "../audit/log.js";
import { eventNames, type NameLookups } from "../audit/names.js";
import { BROKER_ERROR_HEADER, toErrorResponse } from "../http/error-handler.js";
import { badRequest, hostNotAllowed, KeywardError, proxyAuthenticationRequired, unavailable } from "../http/errors.js";
import type { RevocationService } from "../revocation/service.js";
import type { AgentToken } from "../tokens/claims.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { ForwardProxyCa } from "./ca.js";
import { parseAuthority, proxyAuthorizationToken } from "./credentials.js";
import type { ForwardMatch, UpstreamHosts } from "./hosts.js";
import { handOffHeaders } from "./hand-off.js";

export type ForwardProxyDeps = {
  /** The main app: every request is handed to its `/proxy/<upstream>/…` route, in process. */
  app: FastifyInstance;
  verifyToken: TokenVerifier;
  revocations: Pick<RevocationService, "assertNotRevoked">;
  hosts: UpstreamHosts;
  ca: ForwardProxyCa;
  auditLog: Pick<AuditLog, "keep">;
  /** For the names of the agent and grant in the events of what it refuses itself. */
  names: NameLookups;
  log: FastifyBaseLogger;
};

export type ForwardProxyOptions = { port: number; host: string; headersTimeoutMs: number; requestTimeoutMs: number };

/** Who made a request, as its events name them. */
type Requester = Pick<AuditInput, "actor" | "agentId" | "jti" | "grantId" | "names">;

/** A CONNECT tunnel: who opened it, to where, and until when its token is good. */
type Tunnel = { token: string; requester: Requester; host: string; port: number; expiresAtMs: number; requestCame: () => void };

/** Inside a tunnel, responses ask the client to reconnect (with a fresh token) once this little is left. */
const RECONNECT_BEFORE_EXPIRY_MS = 30_000;
const DEFAULT_PORT = { "http:": 80, "https:": 443 } as const;

/**
 * Transparent mode (issue 19): an HTTP forward proxy. `GET http://host/…` (absolute-form) and
 * `CONNECT host:port` followed by TLS, which it terminates with a certificate from Keyward's own CA for
 * hosts some upstream names. Every request, plain or tunnelled, is matched to an upstream by scheme,
 * host, port and base path, then handed in process to the main app's `/proxy/<upstream>/…` route with
 * the agent's token as its bearer: authentication, revocation, decide(), budgets, audit, injection and
 * forwarding are that route's, not a copy. What it refuses itself (no credentials, a host no upstream
 * names, a malformed target) is answered here and audited; nothing is forwarded.
 */
export class ForwardProxy {
  readonly #outer: Server;
  /** Parses the requests inside CONNECT tunnels: one parser, Node's, strict, as for the main listener. */
  readonly #inner: Server;
  readonly #tunnels = new WeakMap<object, Tunnel>();
  readonly #openSockets = new Set<Duplex>();
  /** Requests being answered, plain or in a tunnel: a stop waits for them. */
  readonly #answering = new Set<ServerResponse>();
  #stopping = false;
  readonly #headersTimeoutMs: number;

  private constructor(
    private readonly deps: ForwardProxyDeps,
    options: ForwardProxyOptions,
  ) {
    this.#headersTimeoutMs = options.headersTimeoutMs;
    const serverOptions = {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      keepAliveTimeout: 30_000,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(options.headersTimeoutMs / 4))),
    };
    this.#outer = createServer(serverOptions, (req, res) => void this.#plain(req, res));
    this.#outer.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.#connect(req, socket, head));
    this.#inner = createServer(serverOptions, (req, res) => void this.#tunnelled(req, res));
    for (const server of [this.#outer, this.#inner]) {
      server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => writeRawError(socket, clientErrorOf(err)));
      // WebSocket and other protocol switches are not proxied.
      server.on("upgrade", (req: IncomingMessage, socket: Duplex) => void this.#upgrade(req, socket));
    }
    this.#outer.on("connection", (socket: Socket) => this.#track(socket));
    // The inner server never listens: its connections come from tunnels. Node starts enforcing the
    // headers and request timeouts (slowloris inside a tunnel) when a server starts listening, so it is told it has.
    this.#inner.emit("listening");
  }

  static async start(deps: ForwardProxyDeps, options: ForwardProxyOptions): Promise<ForwardProxy> {
    const proxy = new ForwardProxy(deps, options);
    await new Promise<void>((resolve, reject) => {
      proxy.#outer.once("error", reject);
      proxy.#outer.listen(options.port, options.host, () => resolve());
    });
    return proxy;
  }

  address(): AddressInfo {
    return this.#outer.address() as AddressInfo;
  }

  /**
   * Stops as the main port does (SIGTERM, FLT-14): no new connection or request, and every request being
   * answered is answered, on a connection that then closes, before the rest are closed (FLT-30). The
   * broker closes its database after this: a call cut here would have reached the upstream unanswered.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    const closed = new Promise<void>((resolve) => this.#outer.close(() => resolve()));
    // Stops its timeout checks; it was never listening, so the "not running" error is expected.
    this.#inner.close(() => {});
    await Promise.all(
      [...this.#answering].map((res) => {
        res.shouldKeepAlive = false;
        return new Promise((resolve) => res.once("close", resolve));
      }),
    );
    this.#inner.closeAllConnections();
    this.#outer.closeAllConnections();
    for (const socket of this.#openSockets) socket.destroy();
    await closed;
  }

  /** Past the stop's deadline: the requests still being answered, and every tunnel, are cut. */
  cutRemaining(): void {
    for (const res of this.#answering) res.destroy();
    this.#inner.closeAllConnections();
    this.#outer.closeAllConnections();
    for (const socket of this.#openSockets) socket.destroy();
  }

  /** Whether a request may start: none once stopping (its connection closes); close() waits for one that does. */
  #admit(res: ServerResponse): boolean {
    if (this.#stopping) {
      res.socket?.destroy();
      return false;
    }
    this.#answering.add(res);
    res.once("close", () => this.#answering.delete(res));
    return true;
  }

  #track(socket: Duplex): void {
    this.#openSockets.add(socket);
    socket.once("close", () => this.#openSockets.delete(socket));
  }

  /** `GET http://host:port/path` with Proxy-Authorization on each request. */
  async #plain(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#admit(res)) return;
    // The target as asked for (but its query), also when it is refused for its form.
    const audit = this.#auditBase(req);
    try {
      const target = absoluteHttpTarget(req.url ?? "");
      const { token } = await this.#authenticate(req.rawHeaders, audit);
      assertHostHeader(req.headers.host, target.host, target.port, "http:");
      const match = await this.#match("http:", target.host, target.port, target.rawTarget);
      this.#handOff(req, res, match, token);
    } catch (err) {
      await this.#refuse(audit, err, (e) => sendError(res, e));
    }
  }

  /** WebSocket and other protocol switches are not proxied: refused, and audited like any refusal. */
  async #upgrade(req: IncomingMessage, socket: Duplex): Promise<void> {
    socket.on("error", () => socket.destroy());
    const tunnel = this.#tunnels.get(socket);
    const audit = tunnel ? this.#tunnelAuditBase(req, tunnel) : this.#auditBase(req);
    await this.#refuse(audit, badRequest("upgrade_not_supported", "protocol upgrades are not proxied"), (e) => writeRawError(socket, e));
  }

  /** `CONNECT host:port`: authenticated once, for a host an upstream names; then TLS, then requests. */
  async #connect(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => socket.destroy());
    if (this.#stopping) return void socket.destroy();
    const audit = this.#auditBase(req, 300);
    try {
      const authority = parseAuthority(req.url ?? "");
      if (!authority) throw badRequest("invalid_connect_target", "CONNECT takes host:port");
      const { token, agent } = await this.#authenticate(req.rawHeaders, audit);
      const index = await this.deps.hosts.current();
      if (!index.hasOrigin("https:", authority.host, authority.port)) throw hostNotAllowed(`https://${authority.host}:${authority.port}`);
      const secureContext = await this.deps.ca.contextFor(authority.host);
      if (socket.destroyed) return;
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) socket.unshift(head);
      const tls = new TLSSocket(socket as Socket, { isServer: true, secureContext, ALPNProtocols: ["http/1.1"] });
      tls.on("error", () => tls.destroy());
      const { actor, agentId, jti, grantId, names } = audit;
      const requester = { actor, agentId, jti, grantId, names };
      const requestCame = this.#awaitFirstRequest(tls);
      this.#tunnels.set(tls, { token, requester, host: authority.host, port: authority.port, expiresAtMs: agent.expiresAt * 1000, requestCame });
      this.#track(tls);
      this.#inner.emit("connection", tls);
    } catch (err) {
      await this.#refuse(audit, err, (e) => writeRawError(socket, e));
    }
  }

  /** A request inside a tunnel: its origin is the tunnel's, its token the one that opened it. */
  async #tunnelled(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const tunnel = this.#tunnels.get(req.socket);
    if (!tunnel) return void req.socket.destroy();
    if (!this.#admit(res)) return;
    tunnel.requestCame();
    const audit = this.#tunnelAuditBase(req, tunnel);
    try {
      const rawTarget = tunnelTarget(req.url ?? "", tunnel.host, tunnel.port);
      assertHostHeader(req.headers.host, tunnel.host, tunnel.port, "https:");
      const match = await this.#match("https:", tunnel.host, tunnel.port, rawTarget);
      // The client opens a new tunnel, through `keyward run`'s relay with a fresh token, before this one's ends.
      if (tunnel.expiresAtMs - Date.now() < RECONNECT_BEFORE_EXPIRY_MS) res.shouldKeepAlive = false;
      this.#handOff(req, res, match, tunnel.token);
    } catch (err) {
      await this.#refuse(audit, err, (e) => sendError(res, e));
    }
  }

  /**
   * Node's headers timeout runs from a request's first byte, and in a tunnel only a finished handshake brings
   * one: a client that never finishes it (no ClientHello, or one trickled a byte at a time), or then sends
   * nothing, would hold the tunnel for ever. The handshake gets the headers timeout, whole; then the tunnel
   * may be silent as long before its first request, answered 408 as headers too slow are (whichever of the
   * two timeouts comes first, the client reads the same). Returns what lifts that wait once a request has
   * come: from there Node's own timeouts (request, keep-alive) govern the tunnel.
   */
  #awaitFirstRequest(tls: TLSSocket): () => void {
    const silent = () => writeRawError(tls, requestTimeout());
    const handshake = setTimeout(() => tls.destroy(), this.#headersTimeoutMs);
    tls.once("secure", () => {
      clearTimeout(handshake);
      tls.setTimeout(this.#headersTimeoutMs);
      // Before the inner server's own listener, which destroys a socket that timed out, unanswered.
      tls.prependOnceListener("timeout", silent);
    });
    tls.once("close", () => clearTimeout(handshake));
    return () => {
      tls.setTimeout(0);
      tls.off("timeout", silent);
    };
  }

  async #match(scheme: "http:" | "https:", host: string, port: number, rawTarget: string): Promise<ForwardMatch> {
    const match = (await this.deps.hosts.current()).match(scheme, host, port, rawTarget);
    if (!match) throw hostNotAllowed(`${scheme}//${host}:${port}`);
    return match;
  }

  /** The request goes on as `/proxy/<upstream>/…` with the agent's token as bearer: the main app's route decides. */
  #handOff(req: IncomingMessage, res: ServerResponse, match: ForwardMatch, token: string): void {
    const { headers, rawHeaders } = handOffHeaders(req.headers, req.rawHeaders, token);
    req.url = match.proxyPath;
    req.headers = headers;
    req.rawHeaders.splice(0, req.rawHeaders.length, ...rawHeaders);
    this.deps.app.routing(req, res);
  }

  async #authenticate(rawHeaders: string[], audit: AuditInput): Promise<{ token: string; agent: AgentToken }> {
    const token = proxyAuthorizationToken(rawHeaders);
    if (!token) throw proxyAuthenticationRequired("expected Proxy-Authorization: Bearer <token>, or Basic with the token as password");
    let agent: AgentToken;
    try {
      agent = await this.deps.verifyToken(token);
    } catch {
      throw proxyAuthenticationRequired("the token in Proxy-Authorization is invalid or expired");
    }
    Object.assign(audit, { actor: `agent:${agent.agentId}`, agentId: agent.agentId, jti: agent.jti, grantId: agent.grantId });
    try {
      this.deps.revocations.assertNotRevoked(agent);
    } catch (err) {
      if (err instanceof KeywardError && err.status === 401) throw proxyAuthenticationRequired("the token in Proxy-Authorization is revoked");
      throw err;
    }
    audit.names = await eventNames(this.deps.names, agent);
    return { token, agent };
  }

  /**
   * A refusal's event, its path the request's target without its query or userinfo: agents put credentials
   * there (`?access_token=…`, an API key for a host no upstream names, SEC-04; `http://user:password@host/`,
   * which Python's urllib sends as is through a proxy, SEC-08), and the audit log keeps none.
   */
  #auditBase(req: IncomingMessage, maxPathLength = MAX_EVENT_PATH_LENGTH): AuditInput {
    const target = withoutUserinfo(req.url ?? "");
    const queryAt = target.search(/[?#]/);
    const path = (queryAt === -1 ? target : target.slice(0, queryAt)).slice(0, maxPathLength);
    return { kind: "proxy", actor: "anonymous", requestId: randomUUID(), method: req.method ?? "", path };
  }

  /**
   * A refusal inside a tunnel is its agent's doing (a Host or target naming another origin): the event is
   * the tunnel's agent's, and says which tunnel, as a plain request's absolute-form target does: the path
   * of an origin-form target under the tunnel's origin, and the tunnel in `details` whatever the target.
   */
  #tunnelAuditBase(req: IncomingMessage, tunnel: Tunnel): AuditInput {
    const origin = tunnelOrigin(tunnel.host, tunnel.port);
    const base = this.#auditBase(req);
    const path = base.path?.startsWith("/") ? (origin + base.path).slice(0, MAX_EVENT_PATH_LENGTH) : base.path;
    return { ...base, ...tunnel.requester, path, details: { tunnel: origin } };
  }

  /** Audits a refusal of the forward proxy's own, then answers it; an unaudited refusal answers 503. */
  async #refuse(audit: AuditInput, err: unknown, answer: (err: unknown) => void): Promise<void> {
    const { status, body } = toErrorResponse(err);
    if (status >= 500) this.deps.log.error({ err }, "forward proxy request failed");
    try {
      // As the proxy records refusals: the code (filterable, src/sdk/codes.ts) as reason, the text in details.
      const text = err instanceof KeywardError ? (err.extra.reason ?? err.message) : body.error.message;
      const details = { ...(audit.details as Record<string, unknown> | undefined), reason: text };
      await this.deps.auditLog.keep({ ...audit, decision: "deny", status, reason: body.error.code, details });
    } catch (auditErr) {
      this.deps.log.error({ err: auditErr }, "audit write failed");
      return answer(unavailable("audit_unavailable", "audit log unavailable"));
    }
    answer(err);
  }
}

/** How much of a refused target an event keeps. */
const MAX_EVENT_PATH_LENGTH = 2000;

/** `https://host:port`, an IPv6 host in brackets. */
const tunnelOrigin = (host: string, port: number) => `https://${host.includes(":") ? `[${host}]` : host}:${port}`;

/**
 * The target without the userinfo of its authority, absolute-form (`http://user:password@host/…`) or
 * authority-form (`CONNECT user:password@host:443`), up to its last `@` (a raw one in a password included).
 */
const withoutUserinfo = (target: string) => target.replace(/^((?:[A-Za-z][A-Za-z0-9+.-]*:\/\/)?)[^/?#]*@/, "$1");

/** `http://authority/path?query` → its parts; https and origin-form targets are refused (CONNECT is for https). */
export function absoluteHttpTarget(url: string): { host: string; port: number; rawTarget: string } {
  const match = /^http:\/\/([^/?#@]+)([/?][^#]*)?$/i.exec(url);
  if (!match) {
    if (/^https:/i.test(url)) throw badRequest("use_connect", "https:// targets go through CONNECT");
    throw badRequest("absolute_form_required", "a forward proxy request names an absolute http:// URL");
  }
  const authority = parseAuthority(match[1]!.includes(":") && !match[1]!.endsWith("]") ? match[1]! : `${match[1]!}:80`);
  if (!authority) throw badRequest("invalid_request_target", "the request URL's host is not valid");
  const rest = match[2] ?? "/";
  return { ...authority, rawTarget: rest.startsWith("?") ? "/" + rest : rest };
}

/**
 * A request target inside a tunnel: origin-form, or absolute-form naming the tunnel's own origin.
 * Anything else (another host, `*`, authority-form) is ambiguous and refused.
 */
export function tunnelTarget(url: string, host: string, port: number): string {
  if (url.startsWith("/")) return url;
  const match = /^https:\/\/([^/?#@]+)([/?][^#]*)?$/i.exec(url);
  const authority = match && parseAuthority(match[1]!.includes(":") && !match[1]!.endsWith("]") ? match[1]! : `${match[1]!}:443`);
  if (!authority || authority.host !== host || authority.port !== port) {
    throw badRequest("invalid_request_target", "a request inside a tunnel names the tunnel's own origin");
  }
  const rest = match![2] ?? "/";
  return rest.startsWith("?") ? "/" + rest : rest;
}

/** The Host header must name the origin the request goes to: a mismatch is ambiguous, so refused. */
export function assertHostHeader(hostHeader: string | undefined, host: string, port: number, scheme: "http:" | "https:"): void {
  if (hostHeader === undefined) return; // Node refuses HTTP/1.1 requests without one before this runs.
  const withPort = hostHeader.includes(":") && !hostHeader.endsWith("]") ? hostHeader : `${hostHeader}:${DEFAULT_PORT[scheme]}`;
  const named = parseAuthority(withPort);
  if (!named || named.host !== host || named.port !== port) {
    throw badRequest("host_mismatch", "the Host header names another origin than the request");
  }
}

const requestTimeout = () => new KeywardError(408, "request_timeout", "request not received in time");

/** What Node's parser refused, as the main listener answers it (src/server.ts). */
function clientErrorOf(err: Error & { code?: string }): KeywardError {
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") return requestTimeout();
  if (err.code === "HPE_HEADER_OVERFLOW") return new KeywardError(431, "headers_too_large", "request headers too large");
  return badRequest("bad_request", "malformed HTTP request");
}

function errorResponseText(err: unknown): { status: number; headers: Record<string, string>; body: string; code: string } {
  const { status, headers, body } = toErrorResponse(err);
  return { status, headers, body: JSON.stringify(body), code: body.error.code };
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  const { status, headers, body, code } = errorResponseText(err);
  res.writeHead(status, { ...headers, "content-type": "application/json", [BROKER_ERROR_HEADER]: code, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** An answer on a socket no HTTP response object owns (a refused CONNECT, a parse error); then it closes. */
function writeRawError(socket: Duplex, err: unknown): void {
  if (socket.destroyed) return;
  const { status, headers, body, code } = errorResponseText(err);
  const lines = Object.entries({ ...headers, "content-type": "application/json", [BROKER_ERROR_HEADER]: code, "content-length": String(Buffer.byteLength(body)), connection: "close" })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines}\r\n${body}`);
  socket.once("finish", () => socket.destroy());
}
