import type { ErrorCode } from "./codes.js";
import { errorOf, KeywardApiError } from "./errors.js";

export type FetchFunction = typeof fetch;

export type BrokerRequest = {
  method?: string;
  /** Under the broker's URL, e.g. `/v1/grants`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  authorization?: string;
  /** Sent as JSON. */
  json?: unknown;
  headers?: Record<string, string>;
};

export const basicAuthorization = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;
export const bearerAuthorization = (token: string) => `Bearer ${token}`;

/**
 * Requests to a broker's own API (not through its proxy), shared by the agent SDK and the CLI: one
 * place that builds URLs, sends JSON and turns error answers into typed errors (./errors.ts).
 */
export class BrokerHttp {
  /** The broker's base URL, without a trailing slash. */
  readonly url: string;

  constructor(
    url: string,
    // Called through a wrapper: browsers refuse a fetch called on anything but the global object.
    readonly fetch: FetchFunction = (input, init) => globalThis.fetch(input, init),
  ) {
    this.url = url.replace(/\/+$/, "");
  }

  urlOf(path: string, query: BrokerRequest["query"] = {}): string {
    const url = new URL(this.url + path);
    for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, String(value));
    return url.toString();
  }

  /** The response of a 2xx answer, unread; any other answer throws its typed error. */
  async send(request: BrokerRequest): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json", ...request.headers };
    if (request.authorization) headers.authorization = request.authorization;
    if (request.json !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetch(this.urlOf(request.path, request.query), {
        method: request.method ?? "GET",
        headers,
        body: request.json === undefined ? undefined : JSON.stringify(request.json),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      throw new KeywardApiError(0, "unreachable" satisfies ErrorCode, `cannot reach the broker at ${this.url}`, cause instanceof Error ? cause.message : String(cause));
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** The JSON body of a 2xx answer (undefined for 204). */
  async json<T>(request: BrokerRequest): Promise<T> {
    return (await this.answer<T>(request)).body;
  }

  /** A 2xx answer's status and JSON body (undefined for 204). */
  async answer<T>(request: BrokerRequest): Promise<{ status: number; body: T }> {
    const response = await this.send(request);
    if (response.status === 204) return { status: 204, body: undefined as T };
    try {
      return { status: response.status, body: (await response.json()) as T };
    } catch (err) {
      throw unexpectedAnswer(`${request.path} answered ${response.status} with a body that is not JSON`, err);
    }
  }
}

/** A 2xx the broker would not send: a captive portal, a misrouted proxy, another server at its URL. */
export const unexpectedAnswer = (reason: string, cause?: unknown) =>
  new KeywardApiError(0, "unexpected_answer" satisfies ErrorCode, "the broker's answer is not what the API documents", reason, cause instanceof Error ? cause.message : undefined);
