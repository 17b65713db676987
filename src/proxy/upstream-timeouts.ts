import type { Socket } from "node:net";
import { Agent, buildConnector, errors as undiciErrors, type Dispatcher } from "undici";

/**
 * The three waits of an upstream call, each bounded on its own so a slow but streaming response is not
 * cut: a hung upstream is caught by `headersMs`, a stalled body by `bodyIdleMs`, however long the body.
 */
export type UpstreamTimeouts = {
  /** Establishing the connection (TCP and TLS). */
  connectMs: number;
  /** From writing the request (or its last body chunk) to the response headers. */
  headersMs: number;
  /** Between two chunks of the response body. */
  bodyIdleMs: number;
};

/**
 * undici's own timers past one second tick every ~0.5 s (lib/util/timers.js: "fast timers"), so a hung
 * upstream was answered up to 0.5 s after its limit. The connect and headers waits, the ones an agent
 * sees as a late 504, are therefore timed here with Node's timers; undici's still run as a backstop.
 * The body-idle wait keeps undici's timer: the response has started by then, a late cut costs nothing.
 */
/** The proxy's connection pool to upstreams; with `ca`, one whose TLS trusts only that private CA. */
export function createUpstreamDispatcher(timeouts: UpstreamTimeouts, ca?: string): Dispatcher & { close(): Promise<void> } {
  return new PreciseAgent(timeouts, ca);
}

class PreciseAgent extends Agent {
  readonly #headersMs: number;

  constructor(timeouts: UpstreamTimeouts, ca: string | undefined) {
    super({
      connect: connectWithin(timeouts.connectMs, ca),
      // Only a backstop, a second later: undici's coarse timers fire up to ~0.5 s off, early or late.
      headersTimeout: timeouts.headersMs + 1_000,
      bodyTimeout: timeouts.bodyIdleMs,
      keepAliveTimeout: 10_000,
    });
    this.#headersMs = timeouts.headersMs;
  }

  override dispatch(options: Agent.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Every call in Keyward goes through undici's request(), whose handler is of the callback kind
    // (onConnect/onHeaders/...); any other kind keeps undici's own, coarser, headers timer.
    const legacy = handler as LegacyHandler;
    const timed = typeof legacy.onConnect === "function" && !("onRequestStart" in handler) ? new HeadersDeadline(legacy, this.#headersMs) : handler;
    return super.dispatch(options, timed as Dispatcher.DispatchHandler);
  }
}

/** undici's callback-style dispatch handler, as request() passes it (the methods used here). */
type LegacyHandler = {
  onConnect(abort: (err?: Error) => void, context?: unknown): void;
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: unknown): void;
  onResponseStarted?(): void;
  onBodySent?(chunk: unknown): void;
  onRequestSent?(): void;
};

/**
 * Aborts the call with undici's HeadersTimeoutError (→ 504) once `ms` have passed since the request
 * started on a connected socket, or since its last body chunk went out, without response headers:
 * undici's own rule, on a precise timer.
 */
export class HeadersDeadline implements LegacyHandler {
  #timer: NodeJS.Timeout | undefined;
  #deadline = 0;

  constructor(
    private readonly inner: LegacyHandler,
    private readonly ms: number,
  ) {}

  #arm(abort: (err?: Error) => void): void {
    this.#disarm();
    // Node schedules from the event loop's cached clock, which a busy tick leaves behind, so a timer can
    // fire early by that much: it is checked against the real clock and re-armed for what is left.
    this.#deadline = performance.now() + this.ms;
    const fire = () => {
      const left = this.#deadline - performance.now();
      if (left > 1) this.#timer = setTimeout(fire, left);
      else abort(new undiciErrors.HeadersTimeoutError());
    };
    this.#timer = setTimeout(fire, this.ms);
  }

  /**
   * A chunk of the request went out: the wait starts again. The deadline moves too, not only the timer:
   * a timer re-armed for the last few ms would otherwise, refreshed, abort that soon after the chunk.
   */
  #extend(): void {
    if (this.#timer === undefined) return;
    this.#deadline = performance.now() + this.ms;
    this.#timer.refresh();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    this.#arm(abort);
    this.inner.onConnect(abort, context);
  }

  onBodySent(chunk: unknown): void {
    this.#extend();
    this.inner.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    this.#extend();
    this.inner.onRequestSent?.();
  }

  onResponseStarted(): void {
    this.inner.onResponseStarted?.();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    this.#disarm();
    return this.inner.onHeaders(statusCode, rawHeaders, resume, statusText);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[], socket: unknown): void {
    this.#disarm();
    this.inner.onUpgrade?.(statusCode, rawHeaders, socket);
  }

  onData(chunk: Buffer): boolean {
    return this.inner.onData(chunk);
  }

  onComplete(trailers: string[] | null): void {
    this.#disarm();
    this.inner.onComplete(trailers);
  }

  onError(err: Error): void {
    this.#disarm();
    this.inner.onError(err);
  }
}

/**
 * The errors of connections this connector failed to make (refused, unresolvable, timed out, a TLS
 * handshake refused): undici fails the calls that waited for the connection with the very error, and none
 * of those calls had a byte written. Marked here, where that is known, rather than guessed from codes.
 */
const connectFailures = new WeakSet<Error>();

/** Whether a call failed before it was connected to its upstream: nothing of it was sent. */
export const failedToConnect = (err: unknown): boolean => err instanceof Error && connectFailures.has(err);

const connectFailure = (err: Error): Error => {
  connectFailures.add(err);
  return err;
};

/** undici's connector with its connect timeout on a precise timer (see createUpstreamDispatcher). */
function connectWithin(ms: number, ca: string | undefined): buildConnector.connector {
  const connect = buildConnector({ timeout: 0, ...(ca !== undefined && { ca }) });
  return (options, callback) => {
    let settled = false;
    // undici's connector returns the connecting socket, though its type says void: destroyed on timeout.
    let socket: Socket | undefined;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket?.destroy();
      callback(connectFailure(new undiciErrors.ConnectTimeoutError()), null);
    }, ms);
    socket = connect(options, (err, connected) => {
      clearTimeout(timer);
      if (settled) {
        connected?.destroy();
        return;
      }
      settled = true;
      if (err) callback(connectFailure(err), null);
      else callback(null, connected!);
    }) as unknown as Socket | undefined;
  };
}

/**
 * How long one exchange with a token endpoint (OAuth, GitHub App) may take in all: connecting, then the
 * whole answer, which is small. Its waits are each bounded by the timeouts above too, but an answer sent
 * a byte at a time within the body-idle timeout would otherwise never end (SECURITY.md, FLT-19).
 */
export const tokenDeadlineMs = (timeouts: UpstreamTimeouts): number => timeouts.connectMs + timeouts.headersMs;
