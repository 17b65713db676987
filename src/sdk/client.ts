import type { ErrorCode } from "./codes.js";
import { BROKER_ERROR_HEADER, Denied, errorOf, KeywardApiError, NeedsApproval } from "./errors.js";
import { basicAuthorization, bearerAuthorization, BrokerHttp, unexpectedAnswer, type FetchFunction } from "./http.js";

export type ConnectOptions = {
  /** The broker, e.g. `https://keyward.internal`. */
  url: string;
  clientId: string;
  clientSecret: string;
  /** The fetch to send with (default: the global one). */
  fetch?: FetchFunction;
  /** Refresh a token this long before it expires (default: a minute, or a fifth of its life if shorter). */
  refreshMarginSeconds?: number;
};

/** What to ask for: a grant and, optionally, less than it allows (see POST /v1/tokens). */
export type TokenRequest = { grant: string; ttlSeconds?: number; methods?: string[]; paths?: string[] };

export type Token = {
  accessToken: string;
  expiresAt: Date;
  /** `<upstream>:<METHOD>` for each allowed method, space-separated. */
  scope: string;
  jti: string;
  upstream: string;
  grant: string;
};

export type TokenOptions = {
  /** When a human must approve: poll until they decide (true, or with limits) instead of throwing NeedsApproval. */
  waitForApproval?: boolean | { timeoutMs?: number; pollIntervalMs?: number };
};

type TokenResponse = { access_token: string; expires_in: number; scope: string; jti: string };
type ApprovalAnswer = { status: string; approvalId: string; expiresAt: string; note?: string | null; token?: TokenResponse };

/** One token request and what the broker gave for it so far. */
type Held = {
  request: TokenRequest;
  token?: Token;
  lifetimeMs?: number;
  pending?: { approvalId: string; expiresAt: Date };
  /** Concurrent callers share one attempt. */
  attempt?: Promise<Token>;
};

const DEFAULT_POLL_INTERVAL_MS = 2_000;

/** Requests are the same request whatever the order of their fields. */
const keyOf = (request: TokenRequest) =>
  JSON.stringify([request.grant, request.ttlSeconds ?? null, request.methods ?? null, request.paths ?? null]);

/** Whether a token answer has the fields the SDK reads (another server at the broker's URL may answer 2xx too). */
const isTokenResponse = (value: unknown): value is TokenResponse => {
  const r = value as Partial<Record<keyof TokenResponse, unknown>> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    typeof r.access_token === "string" &&
    typeof r.expires_in === "number" &&
    r.expires_in > 0 &&
    typeof r.scope === "string" &&
    typeof r.jti === "string"
  );
};

/** The upstream a token is for, from its scope (`<upstream>:<METHOD> …`; upstream names have no colon). */
const upstreamOf = (scope: string) => scope.split(" ")[0]!.split(":")[0]!;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An agent's connection to Keyward: short-lived tokens for its grants, refreshed before they expire,
 * and calls through the broker's proxy. No server code and no dependencies beyond `fetch`.
 *
 * ```ts
 * const kw = await Keyward.connect({ url, clientId, clientSecret });
 * await kw.token({ grant: "deploy-staging" });
 * const res = await kw.fetch("hosting-staging", "/v1/projects");
 * ```
 */
export class Keyward {
  readonly #http: BrokerHttp;
  readonly #client: string;
  readonly #refreshMarginSeconds: number | undefined;
  readonly #held = new Map<string, Held>();
  /** Which request's token calls to an upstream use: the one last obtained for it. */
  readonly #byUpstream = new Map<string, Held>();

  private constructor(http: BrokerHttp, options: ConnectOptions) {
    this.#http = http;
    this.#client = basicAuthorization(options.clientId, options.clientSecret);
    this.#refreshMarginSeconds = options.refreshMarginSeconds;
  }

  /** Checks the broker answers (its metadata is public), so a wrong URL fails here rather than at the first call. */
  static async connect(options: ConnectOptions): Promise<Keyward> {
    const http = new BrokerHttp(options.url, options.fetch);
    await http.json({ path: "/.well-known/oauth-authorization-server" });
    return new Keyward(http, options);
  }

  /** The broker's URL. */
  get url(): string {
    return this.#http.url;
  }

  /** The proxy's URL for an upstream: hand it to a client library as its base URL. */
  proxyUrl(upstream: string, path = ""): string {
    return `${this.url}/proxy/${encodeURIComponent(upstream)}${path}`;
  }

  /**
   * A token for the request: the one held while it is not about to expire, else a new one. Throws
   * Denied when the broker refuses, and NeedsApproval while a human must approve (unless waiting):
   * asking again with the same request polls that approval instead of making another.
   */
  async token(request: TokenRequest, options: TokenOptions = {}): Promise<Token> {
    const key = keyOf(request);
    let held = this.#held.get(key);
    if (!held) this.#held.set(key, (held = { request }));
    if (held.token && !this.#expiringSoon(held.token, held.lifetimeMs!)) return held.token;
    const current = held;
    current.attempt ??= this.#obtain(current, options).finally(() => (current.attempt = undefined));
    return current.attempt;
  }

  /**
   * A call through the proxy with the upstream's token (refreshed as needed). The upstream's answer is
   * returned as is, errors included; the broker's refusals throw Denied, Revoked or KeywardApiError.
   */
  async fetch(upstream: string, path: string, init?: RequestInit): Promise<Response> {
    // An upstream's redirect comes back as it is (as the Python client does): followed, the call and its
    // body would go wherever the upstream points, outside the broker and its audit log. A caller may ask
    // for `redirect: "follow"`.
    const request = new Request(this.proxyUrl(upstream, path), { redirect: "manual", ...init });
    // A path of dot segments (`/../../v1/...`, also percent-encoded) resolves out of the proxy, here, before
    // anything is sent: the upstream's token would go to another of the broker's routes.
    const within = new URL(this.proxyUrl(upstream, "/")).href;
    if (!request.url.startsWith(within)) throw new TypeError(`Keyward fetch sends only under ${within}, not ${request.url}`);
    const response = await this.#send(upstream, request);
    if (response.headers.has(BROKER_ERROR_HEADER)) throw await errorOf(response);
    return response;
  }

  /**
   * A `fetch` to hand to other libraries (Octokit, GraphQL clients, …) along with a base URL from
   * `proxyUrl`: it adds the token for the upstream the URL names. Responses come back as they are, the
   * broker's refusals included, for the library to report. It sends only to this broker's proxy.
   */
  readonly proxyFetch: FetchFunction = async (input, init) => {
    const request = new Request(input, init);
    const prefix = `${this.url}/proxy/`;
    const upstream = request.url.startsWith(prefix) ? /^[^/?#]+/.exec(request.url.slice(prefix.length))?.[0] : undefined;
    if (!upstream) throw new TypeError(`Keyward proxyFetch sends only to ${prefix}<upstream>/..., not ${request.url}`);
    return this.#send(decodeURIComponent(upstream), request);
  };

  async #send(upstream: string, request: Request): Promise<Response> {
    const held = this.#byUpstream.get(upstream);
    if (!held) throw new KeywardApiError(0, "no_token" satisfies ErrorCode, `no token for upstream ${upstream}: call token({ grant }) for a grant on it first`);
    const attempt = async () => {
      const token = await this.token(held.request);
      const headers = new Headers(request.headers);
      headers.set("authorization", bearerAuthorization(token.accessToken));
      return this.#http.fetch(new Request(request.clone(), { headers }));
    };
    const response = await attempt();
    // Refreshed ahead of expiry by this machine's clock; if the broker's disagrees, once more with a new token.
    if (response.headers.get(BROKER_ERROR_HEADER) !== "token_expired") return response;
    held.token = undefined;
    return attempt();
  }

  #expiringSoon(token: Token, lifetimeMs: number): boolean {
    const marginMs = (this.#refreshMarginSeconds ?? Math.min(60, lifetimeMs / 5_000)) * 1000;
    return Date.now() >= token.expiresAt.getTime() - marginMs;
  }

  async #obtain(held: Held, options: TokenOptions): Promise<Token> {
    if (!held.pending) {
      const { status, body } = await this.#http.answer<TokenResponse | { approvalId: string; expiresAt: string }>({
        method: "POST",
        path: "/v1/tokens",
        authorization: this.#client,
        json: held.request,
      });
      if (status !== 202) return this.#keep(held, body as TokenResponse);
      const { approvalId, expiresAt } = body as { approvalId: string; expiresAt: string };
      held.pending = { approvalId, expiresAt: new Date(expiresAt) };
      if (!options.waitForApproval) throw new NeedsApproval(approvalId, held.pending.expiresAt);
    }
    return this.#awaitApproval(held, held.pending, options.waitForApproval);
  }

  /** Polls a held request (once, or until decided when waiting): the token once approved. */
  async #awaitApproval(held: Held, pending: NonNullable<Held["pending"]>, wait: TokenOptions["waitForApproval"]): Promise<Token> {
    const limits = typeof wait === "object" ? wait : {};
    const deadline = Math.min(pending.expiresAt.getTime(), limits.timeoutMs === undefined ? Infinity : Date.now() + limits.timeoutMs);
    for (;;) {
      const answer = await this.#http.json<ApprovalAnswer>({ path: `/v1/approvals/${encodeURIComponent(pending.approvalId)}`, authorization: this.#client });
      if (answer.token) {
        held.pending = undefined;
        return this.#keep(held, answer.token);
      }
      if (answer.status === "denied") {
        held.pending = undefined;
        throw new Denied(403, "approval_denied" satisfies ErrorCode, "a human denied the token request", answer.note ?? undefined);
      }
      if (answer.status !== "pending" && answer.status !== "approved") {
        // Expired, or collected already: the next token() makes a new request.
        held.pending = undefined;
        throw new KeywardApiError(410, `approval_${answer.status}`, `the approval is ${answer.status}`);
      }
      if (!wait || Date.now() >= deadline) throw new NeedsApproval(pending.approvalId, pending.expiresAt);
      await sleep(Math.min(limits.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
    }
  }

  #keep(held: Held, response: TokenResponse): Token {
    if (!isTokenResponse(response)) throw unexpectedAnswer("a token answer without access_token, expires_in, scope and jti");
    const token: Token = {
      accessToken: response.access_token,
      expiresAt: new Date(Date.now() + response.expires_in * 1000),
      scope: response.scope,
      jti: response.jti,
      upstream: upstreamOf(response.scope),
      grant: held.request.grant,
    };
    held.token = token;
    held.lifetimeMs = response.expires_in * 1000;
    this.#byUpstream.set(token.upstream, held);
    return token;
  }
}
