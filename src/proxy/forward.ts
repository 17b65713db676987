import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { finished, Transform, type Readable } from "node:stream";
import { errors as undiciErrors, type Dispatcher } from "undici";
import { badGateway, badRequest, gatewayTimeout, KeywardError, payloadTooLarge } from "../http/errors.js";
import type { OutgoingRequest } from "../upstreams/credentials/index.js";
import type { CompiledUpstream } from "../upstreams/upstreams.js";
import { failedToConnect } from "./upstream-timeouts.js";

export { createUpstreamDispatcher, type UpstreamTimeouts } from "./upstream-timeouts.js";

/** Where a call goes: the upstream's origin, and the path with its query as sent. */
export type UpstreamTarget = { origin: string; path: string };

/**
 * The only place the proxy ever calls: the upstream's configured origin and base path, then the
 * normalised path. Nothing from the request can change scheme, host or port. The path is canonical
 * already (src/policy/paths.ts) and the query is the one the policy decided on, already as a URL would
 * hold it (queryAsSent, src/proxy/target.ts): both go out as they are, with no URL parsed per call.
 */
export function upstreamTarget(upstream: Pick<CompiledUpstream, "origin" | "basePath">, encodedPath: string, query: string): UpstreamTarget {
  const path = upstream.basePath + encodedPath;
  return { origin: upstream.origin, path: query === "" ? path : `${path}?${query}` };
}

/**
 * The request handed to the upstream's credential. Its URL object is made only for a kind that reads or
 * rewrites it (query, aws-sigv4); with the others the path goes out as upstreamTarget built it.
 */
export class OutgoingCall implements OutgoingRequest {
  #url: URL | undefined;

  constructor(
    readonly method: string,
    readonly target: UpstreamTarget,
    public headers: Record<string, string>,
    readonly body: Uint8Array | undefined,
  ) {}

  get url(): URL {
    return (this.#url ??= new URL(this.target.origin + this.target.path));
  }

  set url(url: URL) {
    this.#url = url;
  }

  /** Where it goes once the credential is on: a kind may rewrite the path or query, never the origin. */
  sentTo(): UpstreamTarget {
    const url = this.#url;
    if (url === undefined) return this.target;
    if (url.origin !== this.target.origin) throw new Error("upstream URL left its origin");
    return { origin: url.origin, path: url.pathname + url.search };
  }
}

class BodyTooLarge extends Error {}
class BodyAborted extends Error {}

const bodyAborted = () => badRequest("request_aborted", "the request body was not received in full");
const clientGone = () => badRequest("request_aborted", "the client closed the connection before the upstream answered");

/** What undici takes as a request's signal: an EventEmitter that emits `abort` and says whether it did. */
export type ClientGone = EventEmitter & { aborted: boolean };

/**
 * Aborts when the agent's connection closes before its response is complete: the upstream call, and any
 * response it brings, would be for nobody. Tied to the response, not the request: a request's `close`
 * also marks a body that was simply read to its end. An EventEmitter rather than an AbortController:
 * undici takes either, and every call makes one (an AbortSignal cost ~1% of the broker's CPU).
 */
export function abortWhenClientGone(response: ServerResponse): ClientGone {
  const signal = new ClientGoneSignal();
  const abort = () => {
    if (response.writableFinished || signal.aborted) return;
    signal.aborted = true;
    signal.emit("abort");
  };
  // `on`, not `once`: a response closes once, and once's wrapper was one more object per call.
  if (response.closed) abort();
  else response.on("close", abort);
  return signal;
}

class ClientGoneSignal extends EventEmitter implements ClientGone {
  aborted = false;
}

/**
 * Counts streamed request bytes and fails the stream past the limit, so a chunked body can't exceed it.
 * A client that goes away mid-body (timed out, malformed chunking, reset) fails the stream too, so the
 * upstream request is aborted at once instead of waiting for the rest of a body that will never come.
 */
export function limitBody(body: Readable, limit: number): Readable {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      done(seen > limit ? new BodyTooLarge() : null, chunk);
    },
  });
  // finished() also reports a body that was already aborted before this was called (the parser may
  // refuse a malformed chunk while the call is still being decided).
  finished(body, (err) => {
    if (err) limiter.destroy(new BodyAborted());
  });
  return body.pipe(limiter);
}

/** Reads a body from limitBody() to the end, for a credential that must sign it; past the limit → 413. */
export async function collectBody(limited: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of limited) chunks.push(chunk as Buffer);
  } catch (err) {
    if (err instanceof BodyTooLarge) throw payloadTooLarge(limit);
    if (err instanceof BodyAborted) throw bodyAborted();
    throw err;
  }
  return Buffer.concat(chunks);
}

export type ForwardInput = {
  target: UpstreamTarget;
  method: string;
  headers: Record<string, string>;
  body: Readable | Uint8Array | undefined;
  dispatcher: Dispatcher;
  maxBodyBytes: number;
  /** Aborts the call (see abortWhenClientGone). */
  signal: ClientGone;
};

/** The errors `forward` threw for calls of which nothing was sent: their client had left, or their connection was never made. */
const unsent = new WeakSet<KeywardError>();

/** Whether `forward` failed with nothing of the call sent (what it spent may be given back). */
export const neverSent = (err: unknown): boolean => err instanceof KeywardError && unsent.has(err);

/**
 * Sends the request upstream; network failures become 502/504 with no upstream detail in the message.
 * The response body always has an error listener: aborted while nobody reads it yet (the agent left while
 * the response was being audited), it must not take the process down. Whoever reads it still sees the error.
 */
export async function forward(input: ForwardInput): Promise<Dispatcher.ResponseData> {
  // The agent left before its call went out (while it was audited, or its credential fetched): nothing is sent.
  if (input.signal.aborted) {
    const gone = clientGone();
    unsent.add(gone);
    throw gone;
  }
  try {
    // The dispatcher's own request(): undici's top-level one only copies these options and takes the
    // origin and path apart from a URL, on every call.
    const response = await input.dispatcher.request({
      origin: input.target.origin,
      path: input.target.path,
      method: input.method as Dispatcher.HttpMethod,
      headers: input.headers,
      body: input.body,
      // undici 7 follows no redirects unless asked to: a Location header goes back to the agent as is.
      signal: input.signal,
    });
    response.body.on("error", () => {});
    return response;
  } catch (err) {
    const failure = forwardFailure(err, input);
    if (failedToConnect(err)) unsent.add(failure);
    throw failure;
  }
}

/** The answer to a call `forward` could not make, from undici's error. */
function forwardFailure(err: unknown, input: ForwardInput): KeywardError {
  if (input.signal.aborted) return clientGone();
  const cause = (err as { cause?: unknown }).cause;
  if (err instanceof BodyTooLarge || cause instanceof BodyTooLarge) return payloadTooLarge(input.maxBodyBytes);
  if (err instanceof BodyAborted || cause instanceof BodyAborted) return bodyAborted();
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return gatewayTimeout("upstream did not answer in time");
  }
  return badGateway("upstream could not be reached");
}
