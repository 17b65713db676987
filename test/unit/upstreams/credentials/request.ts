import { getGlobalDispatcher } from "undici";
import type { CompileContext, OutgoingRequest, RequestScope } from "../../../../src/upstreams/credentials/index.js";

/** An outgoing request as the proxy hands it to a credential kind. */
export const outgoing = (
  options: { method?: string; url?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
): OutgoingRequest => ({
  method: options.method ?? "GET",
  url: new URL(options.url ?? "https://api.example.test/v1/items"),
  headers: { ...options.headers },
  body: options.body,
});

export const anyGrant: RequestScope = { grant: { methods: ["GET"], paths: ["/**"] } };

/** What compile gets from the Upstreams service; the clock is fixed unless a test moves it. */
export const context = (overrides: Partial<CompileContext> = {}): CompileContext => ({
  baseUrl: new URL("https://api.example.test"),
  dispatcher: getGlobalDispatcher(),
  now: () => Date.parse("2026-01-02T03:04:05Z"),
  tokenDeadlineMs: 5_000,
  ...overrides,
});
