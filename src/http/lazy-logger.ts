import type { FastifyBaseLogger } from "fastify";
import type { Bindings, ChildLoggerOptions, Level, Logger, LogFn } from "pino";

/**
 * A request's logger, made only once something is logged through it at a level that is on. Fastify
 * makes a child logger for every request; on the proxy, whose audit events are its access record,
 * nearly no call logs anything, and a pino child (its bindings serialised through the redaction paths)
 * cost ~2 KiB and ~1.5% of the broker's CPU per call. Lines that are written carry the same bindings
 * (the request id) as an eager child's. Used as the proxy scope's child logger factory (src/server.ts).
 */
export function lazyChildLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  const root = parent as Logger;
  let made: FastifyBaseLogger | undefined;
  const real = (): FastifyBaseLogger => (made ??= parent.child(bindings, options));
  const at =
    (level: Level): LogFn =>
    (...args: Parameters<LogFn>) => {
      // Until it is made, the child would inherit the parent's level (a route's own level makes it at once).
      if (made === undefined && options.level === undefined && !root.isLevelEnabled(level)) return;
      (real()[level] as LogFn)(...args);
    };
  return {
    fatal: at("fatal"),
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    trace: at("trace"),
    silent: () => {},
    child: (childBindings: Bindings, childOptions?: ChildLoggerOptions) => real().child(childBindings, childOptions),
    get level() {
      return made?.level ?? options.level ?? parent.level;
    },
    set level(level: string) {
      real().level = level;
    },
  } as FastifyBaseLogger;
}
