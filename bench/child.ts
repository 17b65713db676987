/**
 * Child processes of the benchmark (upstream, plain proxy, broker), each in its own Node process so
 * that its RSS and CPU profile are its own. A child reports `{ type: "ready", port }` over IPC once it
 * listens, answers `{ type: "call", id, ... }` messages with `{ type: "reply", id, ... }`, and exits
 * cleanly on `{ type: "stop" }` (needed for `--cpu-prof` to write its profile).
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** Where `npm run build:server` compiles the children (tsconfig.build.json includes them). */
const COMPILED_DIR = join(BENCH_DIR, "..", "build", "bench");

/**
 * Brings build/ up to date with src/ and the children's sources (`npm run build:server`, incremental),
 * before any child starts: the benchmark measures the code as it is now, compiled as `npm start` runs it.
 */
export function buildChildren(): void {
  execFileSync("npm", ["run", "--silent", "build:server"], { cwd: join(BENCH_DIR, ".."), stdio: "inherit" });
}

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export type ChildMessage =
  | { type: "ready"; port: number }
  | { type: "reply"; id: number; ok: boolean; result?: unknown; error?: string };

/** Every child started and not yet stopped: stopped on any exit path of the benchmark. */
const live = new Set<Child>();

export class Child {
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #exited: Promise<number | null>;
  #stderrTail = "";
  #stderrSinceStop: string | null = null;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    public port = 0,
  ) {
    this.#exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.stderr?.on("data", (d: Buffer) => {
      this.#stderrTail = (this.#stderrTail + d.toString("utf8")).slice(-4000);
      if (this.#stderrSinceStop !== null) this.#stderrSinceStop = (this.#stderrSinceStop + d.toString("utf8")).slice(-4000);
    });
    proc.on("message", (m: ChildMessage) => {
      if (m.type !== "reply") return;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    proc.once("exit", () => {
      for (const p of this.#pending.values()) p.reject(new Error(`${this.name} exited`));
      this.#pending.clear();
      live.delete(this);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get stderrTail(): string {
    return this.#stderrTail;
  }

  /**
   * Starts `bench/<script>` compiled (build/bench, see buildChildren), as `npm start` runs the broker:
   * plain node, no TypeScript loader. Waits for it to listen. `execPath` runs it on another Node binary
   * than this one (BENCH_NODE).
   */
  static async start(
    name: string,
    script: string,
    options: { env?: NodeJS.ProcessEnv; execArgv?: string[]; execPath?: string; timeoutMs?: number; stdoutFile?: string } = {},
  ): Promise<Child> {
    const stdout = options.stdoutFile ? openSync(options.stdoutFile, "w") : "ignore";
    const proc = fork(join(COMPILED_DIR, script.replace(/\.ts$/, ".js")), [], {
      execArgv: options.execArgv ?? [],
      ...(options.execPath && { execPath: options.execPath }),
      env: options.env ?? process.env,
      // stdout (the broker's request log) goes nowhere unless asked for; stderr is kept for error messages.
      stdio: ["ignore", stdout, "pipe", "ipc"],
    });
    if (typeof stdout === "number") closeSync(stdout);
    const child = new Child(name, proc);
    live.add(child);
    const timeoutMs = options.timeoutMs ?? 120_000;
    try {
      child.port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
        proc.on("message", (m: ChildMessage) => {
          if (m.type === "ready") {
            clearTimeout(timer);
            resolve(m.port);
          }
        });
        // "close", not "exit": by then stderr has been read to the end, for the error message.
        proc.once("close", (code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited with ${code} before it was ready:\n${child.stderrTail}`));
        });
      });
    } catch (err) {
      await child.stop();
      throw err;
    }
    return child;
  }

  /** Asks the child to do something (see each child's `call` handler). */
  call<T>(method: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ type: "call", id, method, ...args });
    });
  }

  /** The child's resident set size in bytes, read from /proc (NaN where there is no /proc). */
  rss(): number {
    return procRss(this.pid);
  }

  /** CPU time (user + system, all threads) the child has used so far, in ms; NaN where there is no /proc. */
  cpuMs(): number {
    return procStat(this.pid)?.cpuMs ?? Number.NaN;
  }

  /** Asks the child to close and exit; kills it (by its pid) if it has not exited in time. Repeats what it said on stderr while closing. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.#stderrSinceStop = "";
    if (this.proc.connected) this.proc.send({ type: "stop" });
    else this.proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      process.stderr.write(`${this.name} did not exit within ${timeoutMs} ms of stop: killing pid ${this.pid}; its stderr ends:\n${this.#stderrTail.slice(-1500)}\n`);
      this.proc.kill("SIGKILL");
    }, timeoutMs);
    await this.#exited;
    clearTimeout(timer);
    const said = this.#stderrSinceStop.trim();
    if (said) process.stderr.write(`${this.name} on stop: ${said.slice(-1500)}\n`);
  }
}

/** A process's resident set size in bytes, from /proc (NaN if it is gone or there is no /proc). */
function procRss(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A process's proportional set size (shared pages split between the processes that map them), in bytes. */
function procPss(pid: number): number {
  try {
    const kb = /^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * From /proc/<pid>/stat: the parent pid, and the CPU time (user + system) of the process and of its
 * children that exited and were waited for, in ms.
 */
function procStat(pid: number): { ppid: number; cpuMs: number; waitedChildrenCpuMs: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the command name (which may contain spaces): state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ms = (ticks: number) => (ticks * 1000) / CLOCK_TICKS;
    return { ppid: Number(fields[1]), cpuMs: ms(Number(fields[11]) + Number(fields[12])), waitedChildrenCpuMs: ms(Number(fields[13]) + Number(fields[14])) };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `root` (children, grandchildren, ...), from the parent pids in /proc. */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * A process and all its descendants, measured together: the embedded PostgreSQL server of a broker
 * (the postmaster, whose pid is the first line of `postgres/postmaster.pid` in the broker's data dir,
 * and the backends, checkpointer, WAL writer, ... it forks). Reported apart from the broker's own RSS.
 */
export class ProcessTree {
  constructor(readonly rootPid: number) {}

  /** The postmaster of the embedded server on `dataDir`, or undefined if none runs there. */
  static ofEmbeddedServer(dataDir: string): ProcessTree | undefined {
    try {
      const pid = Number(readFileSync(join(dataDir, "postgres", "postmaster.pid"), "utf8").split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 && procStat(pid) ? new ProcessTree(pid) : undefined;
    } catch {
      return undefined;
    }
  }

  pids(): number[] {
    return procStat(this.rootPid) ? [this.rootPid, ...descendantsOf(this.rootPid)] : [];
  }

  /**
   * Summed over the live processes: RSS (which counts shared memory such as shared_buffers once per
   * process that touched it) and PSS (which splits it, so the sum is what the server really holds).
   */
  memory(): { processes: number; rss: number; pss: number } {
    const pids = this.pids();
    let rss = 0;
    let pss = 0;
    for (const pid of pids) {
      rss += procRss(pid) || 0;
      pss += procPss(pid) || 0;
    }
    return { processes: pids.length, rss, pss };
  }

  /**
   * CPU time of the tree so far, in ms: the live processes' own time plus what the postmaster collected
   * from children that already exited (PostgreSQL's backends end with their connections).
   */
  cpuMs(): number {
    const root = procStat(this.rootPid);
    if (!root) return Number.NaN;
    let ms = root.cpuMs + root.waitedChildrenCpuMs;
    for (const pid of descendantsOf(this.rootPid)) ms += procStat(pid)?.cpuMs ?? 0;
    return ms;
  }
}

/** Samples of a ProcessTree's memory every `intervalMs` (PSS reads page tables: not too often). */
export class TreeMemorySampler {
  peakRss = 0;
  peakPss = 0;
  maxProcesses = 0;
  #timer: NodeJS.Timeout;

  constructor(
    readonly tree: ProcessTree,
    intervalMs = 500,
  ) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): { processes: number; rss: number; pss: number } {
    const m = this.tree.memory();
    if (m.processes) {
      this.peakRss = Math.max(this.peakRss, m.rss);
      this.peakPss = Math.max(this.peakPss, m.pss);
      this.maxProcesses = Math.max(this.maxProcesses, m.processes);
    }
    return m;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

export async function stopAllChildren(): Promise<void> {
  await Promise.allSettled([...live].map((c) => c.stop()));
}

/** Last-resort cleanup if the parent is interrupted: no child may outlive the benchmark. */
export function killAllChildrenSync(): void {
  for (const c of live) {
    try {
      c.proc.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

/** RSS samples of one child, every `intervalMs`, with a peak that can be reset per phase. */
export class RssSampler {
  readonly samples: { t: number; rss: number }[] = [];
  #timer: NodeJS.Timeout;
  #windowPeak = 0;
  peak = 0;

  constructor(
    readonly child: Child,
    intervalMs = 100,
  ) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): number {
    const rss = this.child.rss();
    if (!Number.isNaN(rss)) {
      this.samples.push({ t: Date.now(), rss });
      this.peak = Math.max(this.peak, rss);
      this.#windowPeak = Math.max(this.#windowPeak, rss);
    }
    return rss;
  }

  /** Starts a window: returns the RSS now and resets the window's peak. */
  openWindow(): number {
    const now = this.sample();
    this.#windowPeak = now;
    return now;
  }

  /** The peak since openWindow(), including a sample taken now. */
  windowPeak(): number {
    this.sample();
    return this.#windowPeak;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

const builtinHandlers: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  /** The monotonic clock in µs, the time base of V8 CPU profiles, to cut a profile to a load window. */
  clockUs: async () => Number(process.hrtime.bigint() / 1000n),
  memory: async () => process.memoryUsage(),
};

/** The child side of the protocol: announce the port, serve calls, exit cleanly on stop. */
export function serveChild(
  port: number,
  handlers: Record<string, (args: Record<string, unknown>) => Promise<unknown>>,
  close: () => Promise<void>,
): void {
  let closing = false;
  const shutdown = async (code: number) => {
    if (closing) return;
    closing = true;
    try {
      await close();
    } finally {
      process.exit(code);
    }
  };
  process.on("message", (m: { type: string; id?: number; method?: string } & Record<string, unknown>) => {
    if (m.type === "stop") void shutdown(0);
    if (m.type === "call" && typeof m.id === "number") {
      const handler = { ...builtinHandlers, ...handlers }[m.method ?? ""];
      const reply = (msg: Omit<Extract<ChildMessage, { type: "reply" }>, "type" | "id">) =>
        process.send?.({ type: "reply", id: m.id, ...msg });
      if (!handler) {
        reply({ ok: false, error: `unknown call ${m.method}` });
        return;
      }
      handler(m).then(
        (result) => reply({ ok: true, result }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
      );
    }
  });
  // The parent went away (crashed or killed): never outlive it.
  process.on("disconnect", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  process.on("SIGINT", () => void shutdown(0));
  process.send?.({ type: "ready", port });
}
