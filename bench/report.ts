/**
 * Results of a benchmark run: the types, the PASS/FAIL targets, the tables (Markdown, printed as is and
 * written into bench/RESULTS.md between markers) and bench/results.json.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, freemem, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { BENCH_DIR } from "./child.js";
import type { LoadResult } from "./load.js";
import type { ProfileSummary } from "./profile-summary.js";
import type { SeedReport } from "./seed.js";

export type Machine = {
  nproc: number;
  cpu: string;
  memTotalGiB: number;
  memFreeGiB: number;
  freeH: string;
  node: string;
  platform: string;
  loadavgStart: number[];
  loadavgEnd?: number[];
};

export function machineInfo(): Machine {
  let freeH = "";
  try {
    freeH = execFileSync("free", ["-h"], { encoding: "utf8" }).trim();
  } catch {
    freeH = "(free not available)";
  }
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memTotalGiB: totalmem() / 2 ** 30,
    memFreeGiB: freemem() / 2 ** 30,
    freeH,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavgStart: loadavg(),
  };
}

export type Rss = { before: number; peak: number; after: number };

export type ProxyRow = {
  c: number;
  target: string;
  /** floor: bench/floor-process.ts, the design's floor (the durable audit guarantee and a forward, nothing else) */
  kind: "direct" | "plain" | "floor" | "keyward";
  /** the Node version the serving process runs on (older results.json entries lack it) */
  node?: string;
  load: LoadResult;
  /** responses with a status the target should not give (for Keyward: not 200 or 403) */
  unexpected: number;
  /** share of 403s (Keyward should deny 20% of the mix) */
  deniedShare: number;
  vsPlain?: number;
  vsDirect?: number;
  /** CPU ms per request of the serving process ÷ the plain proxy's (the upstream's for direct) */
  cpuVsPlain?: number;
};

export type StreamRow = { target: string; kind: ProxyRow["kind"]; node?: string; load: LoadResult; unexpected: number; rss?: Rss };

export type TokenBench = {
  connections: number;
  rawSignPerSec: number;
  scryptVerifyPerSec: number;
  /** bench/token-floor-process.ts at the same concurrency (older results.json entries lack it) */
  floor?: LoadResult;
  /** the same, each token's record made durable before it answers (older entries lack it) */
  durableFloor?: LoadResult;
  endpoint: { backend: string; load: LoadResult; unexpected: number }[];
};

export type TargetCheck = { backend: string; target: string; value: string; threshold: string; pass: boolean };

export type MainResults = {
  mode: "main";
  startedAt: string;
  seconds: number;
  machine: Machine;
  settings: Record<string, unknown>;
  /** the Node versions the brokers and plain proxies ran on: this one first, then BENCH_NODE's */
  nodes?: string[];
  backends: string[];
  proxy: ProxyRow[];
  stream: { connections: number; rows: StreamRow[] };
  /** one large response read by one client through each proxy */
  bigStream: { target: string; status: number; bytes: number; seconds: number; rss: Rss }[];
  tokens: TokenBench;
  /** `memory` is the process's own process.memoryUsage() at the end. */
  rss: { process: string; before: number; peak: number; after: number; memory?: NodeJS.MemoryUsage }[];
  /** each embedded broker's PostgreSQL server: the postmaster and its children, summed */
  embeddedServers?: {
    broker: string;
    postmasterPid: number;
    processes: { before: number; max: number; after: number };
    rss: Rss;
    pss: Rss;
  }[];
  targets: TargetCheck[];
};

/** `npm run bench -- --tunnel` (bench/tunnel.ts): when, how long, where and with what, as the other modes say it. */
export type TunnelResults = Pick<MainResults, "startedAt" | "seconds" | "machine" | "settings"> & {
  mode: "tunnel";
  rows: ProxyRow[];
  /** Keyward's tunnel ÷ its /proxy/ route, per concurrency */
  costs: { c: number; rps: number; p50: number; cpu: number }[];
};

export type ScaleResults = {
  mode: "scale";
  startedAt: string;
  seconds: number;
  machine: Machine;
  settings: Record<string, unknown>;
  backend: string;
  seed: SeedReport;
  startupMs: { empty: number; seeded: number };
  /** POST /v1/tokens of the set-up (32 tokens, 4 at a time) that failed with a 5xx and were retried */
  setupTokenFailures: { empty: { status: number; body: string }[]; seeded: { status: number; body: string }[] };
  /** share of one core the idle broker uses (resync timers) before the load */
  idleCpuShare: { empty: number; seeded: number };
  empty: ProxyRow[];
  seeded: ProxyRow[];
  rss: { empty: Rss; seeded: Rss };
  /** the embedded PostgreSQL's processes, PSS summed (embedded backend only) */
  serverPssPeak?: { empty: number; seeded: number };
  targets: TargetCheck[];
};

export type ProfileResults = {
  mode: "profile" | "profile-stream" | "profile-tokens";
  startedAt: string;
  machine: Machine;
  settings: Record<string, unknown>;
  runs: {
    backend: string;
    load: LoadResult;
    profileFile: string;
    summary: ProfileSummary;
    /** PostgreSQL only: table scans and inserted rows per proxied request */
    statements?: Record<string, { scans: number; inserted: number }>;
  }[];
};

const MiB = 2 ** 20;
/** The middle value of the finite ones (NaN if none). */
export const median = (xs: number[]) => {
  const finite = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return finite.length ? finite[Math.floor(finite.length / 2)]! : NaN;
};

export const mib = (bytes: number) => (Number.isFinite(bytes) ? (bytes / MiB).toFixed(0) : "n/a");
const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "" : n.toFixed(1));
const f3 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "" : n.toFixed(3));
const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "" : n.toFixed(2));
const int = (n: number) => Math.round(n).toLocaleString("en");
const pct = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "" : `${(100 * n).toFixed(0)}%`);

export function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map((h, i) => (i === 0 || /^(target|process|backend|what|component|function|where|table|measured|required|result)$/.test(h) ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

export function machineLine(m: Machine, otherNodes: string[] = []): string {
  const load = (l: number[] | undefined) => (l ? l.map((x) => x.toFixed(2)).join(" ") : "?");
  const node = otherNodes.length ? `Node ${m.node} (the harness, upstream and load; servers also on ${otherNodes.map((v) => `Node ${v}`).join(", ")})` : `Node ${m.node}`;
  return [
    `Machine: ${m.nproc} cores (\`nproc\`), ${m.cpu}, ${m.memTotalGiB.toFixed(0)} GiB RAM, ${node}, ${m.platform}; ` +
      `load average ${load(m.loadavgStart)} at start, ${load(m.loadavgEnd)} at end (other work shares the machine: compare ratios, not absolutes).`,
    "",
    "```",
    "$ free -h",
    m.freeH,
    "```",
  ].join("\n");
}

export function proxyTable(rows: ProxyRow[]): string {
  return table(
    ["c", "target", "req/s", "p50 ms", "p99 ms", "÷ plain proxy", "÷ direct", "CPU ms/req", "CPU ÷ plain", "+ PostgreSQL CPU ms/req", "denied", "unexpected"],
    rows.map((r) => [
      String(r.c),
      r.target,
      int(r.load.rps),
      f2(r.load.p50),
      f2(r.load.p99),
      r.kind === "plain" ? "100%" : pct(r.vsPlain),
      pct(r.vsDirect),
      f3(r.load.cpuMsPerRequest),
      r.cpuVsPlain === undefined || !Number.isFinite(r.cpuVsPlain) ? "" : `${r.cpuVsPlain.toFixed(1)}×`,
      f3(r.load.serverCpuMsPerRequest),
      pct(r.deniedShare),
      String(r.unexpected + r.load.errors),
    ]),
  );
}

function targetsTable(targets: TargetCheck[]): string {
  return table(
    ["backend", "target", "measured", "required", "result"],
    targets.map((t) => [t.backend, t.target, t.value, t.threshold, t.pass ? "PASS" : "**FAIL**"]),
  );
}

export function renderMain(r: MainResults): string {
  const out: string[] = [];
  out.push(`Run of ${r.startedAt} (\`npm run bench\`, ${r.seconds.toFixed(0)} s; ${JSON.stringify(r.settings)}).`, "");
  out.push(machineLine(r.machine, (r.nodes ?? []).slice(1)), "");
  out.push("### Forwarding: 80% allowed / 20% denied, 32 tokens of 4 agents rotated per request", "");
  out.push(proxyTable(r.proxy), "");
  out.push(
    "`denied` is the share of 403s (Keyward must deny 20%; the plain proxy and the upstream check nothing and answer 200). " +
      "`unexpected` counts any other status and connection errors. Latencies are exact (every response time kept), over all responses. " +
      "`CPU ms/req` is the serving process's CPU time (user + system, all threads, from /proc) per response: much less sensitive to other load " +
      "on the machine than req/s (for direct it is the upstream's; PostgreSQL's own CPU is not included in it). " +
      "`+ PostgreSQL CPU ms/req` is the embedded PostgreSQL's CPU time per response (its postmaster and every process it forked), " +
      "on top of the broker's; empty on DATABASE_URL, whose server is shared. " +
      (r.nodes && r.nodes.length > 1 ? "With more than one Node, each broker's ratios are to the plain proxy on its own Node. " : ""),
    "",
  );
  const c16 = r.proxy.filter((p) => p.c === 16);
  for (const k of c16.filter((p) => p.kind === "keyward" || p.kind === "floor")) {
    const plain16 = c16.find((p) => p.kind === "plain" && p.node === k.node);
    if (plain16) out.push(`- p99 added over the plain proxy at c=16, ${k.target}: **${f2(k.load.p99 - plain16.load.p99)} ms** (p50: ${f2(k.load.p50 - plain16.load.p50)} ms)`);
  }
  if (r.proxy.some((p) => p.kind === "floor")) {
    out.push(
      "",
      "`design floor` is bench/floor-process.ts: what issue 14's audit guarantee costs with none of Keyward's features around it " +
        "(the token looked up in memory, the same 20% refused, each allowed call's decision event made durable before it is forwarded " +
        "and its outcome event before it is answered: hash-chained JSON lines in a spool file, one `fdatasync` per group of calls, as " +
        "the broker's spool does; then undici with the upstream's key). What the broker spends per call beyond it is its features' cost:",
      "",
    );
    for (const k of r.proxy.filter((p) => p.kind === "keyward")) {
      const floor = r.proxy.find((p) => p.kind === "floor" && p.c === k.c && p.node === k.node);
      if (!floor) continue;
      const beyond = (k.load.cpuMsPerRequest ?? Number.NaN) - (floor.load.cpuMsPerRequest ?? Number.NaN);
      out.push(
        `- c=${k.c}, ${k.target}: ${f3(beyond)} ms of CPU per call beyond the floor's ${f3(floor.load.cpuMsPerRequest)}; ` +
          `throughput ${pct(k.load.rps / floor.load.rps)} of the floor's (the floor: ${pct(floor.vsPlain)} of the plain proxy's)`,
      );
    }
  }
  out.push("", `### Streaming 1 MiB responses (c=${r.stream.connections})`, "");
  out.push(
    table(
      ["target", "req/s", "MiB/s", "p50 ms", "p99 ms", "RSS before MiB", "RSS peak MiB", "RSS after MiB", "growth MiB", "unexpected"],
      r.stream.rows.map((s) => [
        s.target,
        int(s.load.rps),
        f1(s.load.bytesPerSec / MiB),
        f2(s.load.p50),
        f2(s.load.p99),
        s.rss ? mib(s.rss.before) : "",
        s.rss ? mib(s.rss.peak) : "",
        s.rss ? mib(s.rss.after) : "",
        s.rss ? mib(s.rss.peak - s.rss.before) : "",
        String(s.unexpected + s.load.errors),
      ]),
    ),
    "",
  );
  out.push(
    table(
      ["one large response, one client", "MiB", "seconds", "MiB/s", "RSS before MiB", "RSS peak MiB", "growth MiB"],
      r.bigStream.map((b) => [b.target, mib(b.bytes), f1(b.seconds), f1(b.bytes / MiB / b.seconds), mib(b.rss.before), mib(b.rss.peak), mib(b.rss.peak - b.rss.before)]),
    ),
    "",
  );
  out.push(`### Token issuance (c=${r.tokens.connections})`, "");
  const tokenRows: string[][] = [["raw jose ES256 signing loop (same claims, in-process)", int(r.tokens.rawSignPerSec), "100%", "", ""]];
  const floors: [string, LoadResult | undefined][] = [
    [
      "token floor: a Fastify route that parses the JSON body and signs, nothing else (bench/token-floor-process.ts): what any token endpoint here can reach",
      r.tokens.floor,
    ],
    [
      "durable token floor: the same, each token's record made durable before it answers (a hash-chained line, one `fdatasync` per group, as the broker's spool): what a token endpoint keeping issue 14's guarantee can reach here",
      r.tokens.durableFloor,
    ],
  ];
  for (const [what, load] of floors) {
    if (load) tokenRows.push([what, int(load.rps), pct(load.rps / r.tokens.rawSignPerSec), f1(load.p50), f1(load.p99)]);
  }
  for (const e of r.tokens.endpoint) {
    tokenRows.push([`POST /v1/tokens, ${e.backend} (client auth + sign + DB write)`, int(e.load.rps), pct(e.load.rps / r.tokens.rawSignPerSec), f1(e.load.p50), f1(e.load.p99)]);
  }
  tokenRows.push(["scrypt client-secret verification alone (N=2^15, 4 asked for at a time, verified one at a time as the broker does, in-process): an agent pays one per verification window, not per token (src/agents/verified-secrets.ts)", f1(r.tokens.scryptVerifyPerSec), pct(r.tokens.scryptVerifyPerSec / r.tokens.rawSignPerSec), "", ""]);
  out.push(table(["what", "tokens/s", "÷ raw signing", "p50 ms", "p99 ms"], tokenRows), "");
  out.push("### Memory (RSS of each process, from /proc)", "");
  out.push(
    table(
      ["process", "before load MiB", "peak MiB", "after MiB", "at end: V8 heap used / total MiB", "external MiB", "array buffers MiB"],
      r.rss.map((x) => [
        x.process,
        mib(x.before),
        mib(x.peak),
        mib(x.after),
        x.memory ? `${mib(x.memory.heapUsed)} / ${mib(x.memory.heapTotal)}` : "",
        x.memory ? mib(x.memory.external) : "",
        x.memory ? mib(x.memory.arrayBuffers) : "",
      ]),
    ),
    "",
  );
  if (r.embeddedServers?.length) {
    out.push(
      "Embedded PostgreSQL of each broker (not in the broker's RSS above): its postmaster and every process it forked, summed. " +
        "RSS counts the shared buffers again in every process that touched them; PSS splits shared pages between the processes, " +
        "so its sum is what the server really holds.",
      "",
      table(
        ["process", "processes before / max / after", "RSS before MiB", "RSS peak MiB", "RSS after MiB", "PSS before MiB", "PSS peak MiB", "PSS after MiB"],
        r.embeddedServers.map((x) => [
          `embedded PostgreSQL of ${x.broker}`,
          `${x.processes.before} / ${x.processes.max} / ${x.processes.after}`,
          mib(x.rss.before),
          mib(x.rss.peak),
          mib(x.rss.after),
          mib(x.pss.before),
          mib(x.pss.peak),
          mib(x.pss.after),
        ]),
      ),
      "",
    );
  }
  out.push("### Targets", "", targetsTable(r.targets));
  return out.join("\n");
}

export function renderScale(r: ScaleResults): string {
  const out: string[] = [];
  out.push(`Run of ${r.startedAt} (\`npm run bench -- --scale\`, ${r.seconds.toFixed(0)} s, backend ${r.backend}; ${JSON.stringify(r.settings)}).`, "");
  out.push(machineLine(r.machine), "");
  out.push(
    `Seeded: ${int(r.seed.grants)} grants (+ ${int(r.seed.grants)} grant-agent links, ${int(r.seed.agents)} agents), ` +
      `${int(r.seed.tokens)} IssuedToken rows, ${int(r.seed.revocations)} live jti revocations, in ${f1(r.seed.seconds)} s:`,
    "",
    table(
      ["table", "rows", "seconds", "rows/s"],
      r.seed.steps.map((s) => [s.table, int(s.rows), f1(s.seconds), int(s.rows / Math.max(s.seconds, 1e-9))]),
    ),
    "",
    `Broker start-up: ${int(r.startupMs.empty)} ms on the empty database, ${int(r.startupMs.seeded)} ms on the seeded one. ` +
      `Broker RSS peak: ${mib(r.rss.empty.peak)} MiB empty, ${mib(r.rss.seeded.peak)} MiB seeded` +
      (r.serverPssPeak ? ` (the embedded PostgreSQL apart, PSS peak: ${mib(r.serverPssPeak.empty)} MiB empty, ${mib(r.serverPssPeak.seeded)} MiB seeded)` : "") +
      ". " +
      `Idle broker CPU (no requests, 4 s): ${(100 * r.idleCpuShare.empty).toFixed(1)}% of a core empty, ${(100 * r.idleCpuShare.seeded).toFixed(1)}% seeded. ` +
      `Set-up token requests (32, 4 at a time) that failed with a 5xx and were retried: ${r.setupTokenFailures.empty.length} empty, ` +
      `${r.setupTokenFailures.seeded.length} seeded${r.setupTokenFailures.seeded[0] ? ` (e.g. ${r.setupTokenFailures.seeded[0].status} ${r.setupTokenFailures.seeded[0].body})` : ""}.`,
    "",
    "Empty database:",
    "",
    proxyTable(r.empty),
    "",
    "Seeded database:",
    "",
    proxyTable(r.seeded),
    "",
    targetsTable(r.targets),
  );
  return out.join("\n");
}

export function renderProfile(r: ProfileResults): string {
  const scenario = r.mode === "profile-stream" ? "BENCH_PROFILE_SCENARIO=stream " : r.mode === "profile-tokens" ? "BENCH_PROFILE_SCENARIO=tokens " : "";
  const how = `${scenario}npm run bench -- --profile`;
  const out: string[] = [`Run of ${r.startedAt} (\`${how}\`; ${JSON.stringify(r.settings)}).`, ""];
  for (const run of r.runs) {
    out.push(
      `#### ${run.backend}: ${int(run.load.rps)} req/s at c=${run.load.connections}, p99 ${f2(run.load.p99)} ms; ` +
        `${f1(run.summary.busyMs / 1000)} s of ${f1(run.summary.totalMs / 1000)} s on CPU (main thread)`,
      "",
      table(
        ["component", "self %", "on stack %"],
        run.summary.components.slice(0, 16).map((c) => [c.name, f1(c.selfPct), f1(c.inclusivePct)]),
      ),
      "",
      table(
        ["function", "component", "self %", "where"],
        run.summary.functions.slice(0, 15).map((f) => [`\`${f.name}\``, f.component, f1(f.selfPct), f.where ? `\`${f.where}\`` : ""]),
      ),
      "",
    );
    if (run.statements) {
      out.push(
        "Database work per proxied request (PostgreSQL table statistics, mix of 80% allowed / 20% denied):",
        "",
        table(
          ["table", "scans / request", "rows inserted / request"],
          Object.entries(run.statements).map(([t, v]) => [t, f2(v.scans), f2(v.inserted)]),
        ),
        "",
      );
    }
  }
  return out.join("\n");
}

/** `--soak`: samples over time and the summary lines it printed. */
export type SoakResults = {
  mode: "soak";
  startedAt: string;
  machine: Machine;
  settings: { seconds: number; connections: number; backend: string };
  passed: boolean;
  summary: string[];
  samples: { t: number; rssMiB: number; fds: number; loopP99Ms: number; loopMaxMs: number; dbConnections: number | null }[];
};

export function renderSoak(r: SoakResults): string {
  const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  return [
    `Run of ${r.startedAt} (\`npm run bench -- --soak\`; ${r.settings.seconds} s at c=${r.settings.connections} on ${r.settings.backend}; ` +
      `load average ${r.machine.loadavgStart.map((l) => l.toFixed(2)).join(" ")} at the start, ${(r.machine.loadavgEnd ?? []).map((l) => l.toFixed(2)).join(" ")} at the end): ` +
      `**${r.passed ? "passed" : "FAILED"}**`,
    "",
    ...r.summary.map((line) => `- ${line.replace(/^soak: /, "")}`),
    "",
    table(
      ["t (s)", "RSS (MiB)", "open fds", "event-loop delay p99 (ms)", "max (ms)", "db connections"],
      r.samples.map((s) => [s.t.toFixed(0), s.rssMiB.toFixed(0), String(s.fds), f1(s.loopP99Ms), f1(s.loopMaxMs), s.dbConnections === null ? "n/a" : String(s.dbConnections)]),
    ),
    "",
  ].join("\n");
}

export const RESULTS_JSON = join(BENCH_DIR, "results.json");
export const RESULTS_MD = join(BENCH_DIR, "RESULTS.md");

/** The entry of results.json and the block of RESULTS.md a run replaces: one per mode (and scale backend). */
export const resultsKey = (r: MainResults | ScaleResults | ProfileResults | TunnelResults | SoakResults) => (r.mode === "scale" ? `scale-${r.backend}` : r.mode);

/** Keeps the other modes' latest results: each mode replaces only its own entry. */
export function saveResults(results: MainResults | ScaleResults | ProfileResults | TunnelResults | SoakResults, markdown: string): void {
  const key = resultsKey(results);
  let all: Record<string, unknown> = {};
  try {
    if (existsSync(RESULTS_JSON)) all = JSON.parse(readFileSync(RESULTS_JSON, "utf8")) as Record<string, unknown>;
  } catch {
    all = {};
  }
  all[key] = results;
  writeFileSync(RESULTS_JSON, JSON.stringify(all, null, 2) + "\n");

  const start = `<!-- bench:${key}:start -->`;
  const end = `<!-- bench:${key}:end -->`;
  let md = existsSync(RESULTS_MD) ? readFileSync(RESULTS_MD, "utf8") : "# Keyward benchmark results\n";
  const block = `${start}\n${markdown}\n${end}`;
  const a = md.indexOf(start);
  const b = md.indexOf(end);
  if (a !== -1 && b > a) md = md.slice(0, a) + block + md.slice(b + end.length);
  else md = `${md.trimEnd()}\n\n${block}\n`;
  writeFileSync(RESULTS_MD, md);
}
