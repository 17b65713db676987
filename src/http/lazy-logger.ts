import type { FastifyBaseLogger } from "fastify";
import type { Bindings, ChildLoggerOptions, Level, Logger } from "pino";

/**
 * A request's logger, made only once something is logged through it at a level that is on. Fastify
 * makes a child logger for every request; on the proxy, whose audit events are its access record,
 * nearly no call logs anything, and a pino child (its bindings serialised through the redaction paths)
 * cost ~2 KiB and ~1.5% of the broker's CPU per call. Lines that are written carry the same bindings
 * (the request id) as an eager child's. A class, so that each request makes one small object and no
 * closures. Every scope's child logger factory (src/server.ts): on the API too, a token issued logs nothing.
 */
export function lazyChildLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(parent as Logger, bindings, options) as unknown as FastifyBaseLogger;
}

type LogArgs = Parameters<Logger["info"]>;

class LazyChildLogger {
  #made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  #real(): Logger {
    return (this.#made ??= this.parent.child(this.bindings, this.options));
  }

  #log(level: Level, args: LogArgs): void {
    // Until it is made, the child would inherit the parent's level (a route's own level makes it at once).
    if (this.#made === undefined && this.options.level === undefined && !this.parent.isLevelEnabled(level)) return;
    this.#real()[level](...args);
  }

  fatal(...args: LogArgs): void {
    this.#log("fatal", args);
  }
  error(...args: LogArgs): void {
    this.#log("error", args);
  }
  warn(...args: LogArgs): void {
    this.#log("warn", args);
  }
  info(...args: LogArgs): void {
    this.#log("info", args);
  }
  debug(...args: LogArgs): void {
    this.#log("debug", args);
  }
  trace(...args: LogArgs): void {
    this.#log("trace", args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options);
  }

  get level(): string {
    return this.#made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }
}
