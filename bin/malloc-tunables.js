// glibc's malloc settings a broker runs with. Run as a script, it prints `GLIBC_TUNABLES=<settings>` for
// `env` on `npm start`'s command line, or nothing when GLIBC_TUNABLES is already set: an operator's own
// setting is kept as it is. glibc reads the variable only as the process starts (setting it from inside
// the process does nothing); other C libraries (musl, macOS) ignore it.
import { pathToFileURL } from "node:url";

/**
 * - `glibc.malloc.arena_max=2`: glibc gives threads that allocate at the same time arenas of their own,
 *   up to 8 per core, and each arena keeps the memory freed into it. A broker's allocating threads are
 *   its main thread, libuv's four (the audit spool's writes and `fdatasync`, scrypt, WebCrypto signing)
 *   and V8's (garbage collection, compiling): measured, ~28 MiB sat in thread arenas in an idle broker.
 * - `glibc.malloc.mmap_threshold=131072`: fixed at glibc's default of 128 KiB. Left dynamic, glibc raises
 *   the threshold to the size of any mapped block it frees (up to 32 MiB), and from then on serves
 *   blocks up to that size from the arenas, where they stay resident once freed (mallopt(3)). Fixed,
 *   every block from 128 KiB up is mapped and handed back to the kernel when freed.
 *
 * Measured, one broker on the embedded default, phases one after the other (idle after set-up; mixed
 * calls at c=64 for 10 s; 1 MiB responses to 64 clients for 10 s; tokens at c=4 for 10 s), RSS peak
 * per phase in MiB, two runs each:
 *   Node 20 without: 141-147 / 184-188 / 210-227 / 218-228; with: 128-131 / 164-172 / 190-206 / 183-196
 *   Node 24 without: 134-138 / 305-307 / 360-385 / 361-386; with: 136 / 284 / 311 / 312
 * CPU per call and per token unchanged (Node 20, c=64: 0.179-0.188 ms without, 0.170-0.180 with; the
 * embedded PostgreSQL, which inherits the setting, 0.049-0.052 ms per call at c=16 both ways).
 */
export const BROKER_GLIBC_TUNABLES = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072";

/** What a broker's environment gets: the settings, or nothing when `env` already sets GLIBC_TUNABLES. */
export function mallocTunablesEnvironment(env = process.env) {
  return env.GLIBC_TUNABLES === undefined ? { GLIBC_TUNABLES: BROKER_GLIBC_TUNABLES } : {};
}

/** Whether this process runs on glibc, the only C library that reads GLIBC_TUNABLES. */
export function runsOnGlibc() {
  return Boolean(process.report?.getReport().header.glibcVersionRuntime);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // For `env` on npm start's command line: `NAME=value`, or nothing.
  process.stdout.write(Object.entries(mallocTunablesEnvironment()).map(([name, value]) => `${name}=${value}`).join(" "));
}
