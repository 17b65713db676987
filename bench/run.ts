/**
 * `npm run bench`: Keyward against a plain @fastify/http-proxy and direct calls, on loopback, in one
 * run, reported as ratios (the machine is shared, so only same-run ratios mean anything).
 *
 *   npm run bench                 forwarding (c = 1, 16, 64), 1 MiB streaming, a 256 MiB stream plain and
 *                                 full of secrets to redact, token issuance, RSS; forwarding also through
 *                                 the design's floor (bench/floor-process.ts: the audit guarantee alone),
 *                                 and token issuance also by a bare signing endpoint and by one that makes each
 *                                 token's record durable first (bench/token-floor-process.ts)
 *   npm run bench -- --scale      the forwarding scenario on an empty and on a seeded database
 *   npm run bench -- --profile    a CPU profile (node --cpu-prof) of each broker under load at c=16
 *   npm run bench -- --soak       10 minutes of mixed traffic at c=64 with a token issued, a token revoked
 *                                 and a grant edited every second: RSS, fds, event-loop delay and database
 *                                 connections over time, audit events against calls (bench/soak.ts);
 *                                 --soak-seconds N for a shorter (or longer) run
 *   npm run bench -- --tunnel     transparent mode: the forward proxy's tunnel against the /proxy/ route and
 *                                 a plain TLS-terminating proxy, to an HTTPS upstream (bench/tunnel.ts)
 *
 * Keyward runs on the embedded PostgreSQL (a temp data dir, as `npm start` does) and, when DATABASE_URL is
 * set, also on that PostgreSQL in a fresh schema `kw_bench_<random>` that is dropped afterwards. Every server is its own
 * child process (bench/*-process.ts), so RSS and profiles are per process; the load generator
 * (autocannon) runs here.
 *
 * Settings (environment): BENCH_DURATION_S (5), BENCH_WARMUP_S (1), BENCH_CONCURRENCY ("1,16,64"),
 * BENCH_STREAM_CONNECTIONS (64), BENCH_BIG_STREAM_MIB (256), BENCH_BIG_STREAM_ROUNDS (9: redacted transfers per target, after one warm-up round; each round runs every target once), BENCH_TOKEN_DURATION_S (= BENCH_DURATION_S),
 * BENCH_TOKEN_CONNECTIONS (4),
 * BENCH_PROFILE_DURATION_S (15), BENCH_PROFILE_CONNECTIONS (16), BENCH_LOG_LEVEL (the broker's LOG_LEVEL, default info as in production),
 * BENCH_BACKENDS ("embedded,postgres": a subset to run), BENCH_SCALE=1 / BENCH_PROFILE=1 (same as the flags),
 * BENCH_PROFILE_SCENARIO=stream (profile the 1 MiB streaming scenario instead of the mixed one; =tokens: token issuance),
 * SEED_GRANTS / SEED_TOKENS / SEED_REVOCATIONS / SEED_AGENTS (scale seed sizes),
 * BENCH_BROKER_LOG_DIR (keep each broker's log there; by default it goes to /dev/null),
 * BENCH_NODE (paths of other Node binaries, comma-separated: in the main mode every broker, and a plain
 * proxy to compare it with, also runs on each of them; the upstream and the load stay on this Node),
 * BENCH_NO_SAVE=1 (print the results but leave bench/RESULTS.md and bench/results.json alone: smoke runs),
 * KEYWARD_UPSTREAM_TIMEOUT_MS (passed on to the brokers; no other KEYWARD_* variable of ours is).
 *
 * The embedded PostgreSQL's processes (its postmaster and every process it forks) are measured apart
 * from the broker: their RSS and PSS in the memory table, their CPU per request beside the broker's.
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair } from "jose";
import pg from "pg";
import { hashClientSecret, verifyClientSecret } from "../src/agents/client-secret.js";
import { openDatabase } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { BENCH_DIR, buildChildren, Child, killAllChildrenSync, ProcessTree, RssSampler, stopAllChildren, TreeMemorySampler } from "./child.js";
import { runLoad, type LoadResult, type RequestSpec } from "./load.js";
import { formatProfileSummary, summariseProfile } from "./profile-summary.js";
import {
  machineInfo,
  mib,
  renderMain,
  renderProfile,
  renderScale,
  renderSoak,
  median,
  saveResults,
  type MainResults,
  type ProfileResults,
  type ProxyRow,
  type Rss,
  type ScaleResults,
  type SoakResults,
  type StreamRow,
  type TargetCheck,
} from "./report.js";
import { mixedRequest, PROXY_PREFIX, setupScenario, signBenchToken, streamRequest, tokenRequest, UPSTREAM_SECRET, type Scenario } from "./scenario.js";
import { seedCountsFromEnv, seedDatabase } from "./seed.js";
import { mallocTunablesEnvironment } from "../bin/malloc-tunables.js";
import { brokerV8Flags } from "../bin/v8-flags.js";
import { runSoak } from "./soak.js";
import { runTunnelBench } from "./tunnel.js";

// ---------------------------------------------------------------------------------------------- settings

const env = process.env;
const num = (name: string, fallback: number, min = Number.MIN_VALUE) => {
  const v = Number(env[name]);
  return env[name] && Number.isFinite(v) && v >= min ? v : fallback;
};
const S = {
  durationS: num("BENCH_DURATION_S", 5),
  warmupS: num("BENCH_WARMUP_S", 1, 0),
  /**
   * Mixed calls at c=16 every server takes once before the forwarding runs. V8 compiles a broker's far
   * larger code for tens of seconds of load: measured side by side (bench/RESULTS.md, session 14), a
   * broker fresh from set-up spent 52% more CPU per call in its first 5 s than one already under load
   * for 40 s, and still 4-17% more in the three runs after. A broker runs for days: the steady state is
   * what is measured, and every server, the plain proxy too, gets the same warm-up.
   */
  steadyS: num("BENCH_STEADY_S", 30, 0),
  concurrency: (env.BENCH_CONCURRENCY ?? "1,16,64").split(",").map(Number).filter((n) => n > 0),
  streamConnections: num("BENCH_STREAM_CONNECTIONS", 64),
  /** one response this large, read by one client: buffering it would show as RSS growth of its size */
  bigStreamMiB: num("BENCH_BIG_STREAM_MIB", 256),
  bigStreamRounds: num("BENCH_BIG_STREAM_ROUNDS", 9),
  // 4 = the libuv threadpool, where each request's scrypt runs
  tokenConnections: num("BENCH_TOKEN_CONNECTIONS", 4),
  profileDurationS: num("BENCH_PROFILE_DURATION_S", 15),
  profileConnections: num("BENCH_PROFILE_CONNECTIONS", 16),
  logLevel: env.BENCH_LOG_LEVEL ?? "info",
  agents: 4,
  tokensPerAgent: 8,
};
const tokenDurationS = num("BENCH_TOKEN_DURATION_S", S.durationS);
/** Token requests every token endpoint (the floor and each broker) takes before its run: the same reason as S.steadyS. */
const tokenWarmupS = num("BENCH_TOKEN_WARMUP_S", 10, 0);
const args = process.argv.slice(2);
const MODE = args.includes("--soak")
  ? "soak"
  : args.includes("--scale") || env.BENCH_SCALE === "1"
    ? "scale"
    : args.includes("--profile") || env.BENCH_PROFILE === "1"
      ? "profile"
      : args.includes("--tunnel") ? "tunnel" : "main";
const soakSecondsArg = args.indexOf("--soak-seconds");
const SOAK_SECONDS = soakSecondsArg >= 0 ? Number(args[soakSecondsArg + 1]) : 600;
if (!(Number.isInteger(SOAK_SECONDS) && SOAK_SECONDS > 0)) {
  process.stderr.write("--soak-seconds needs a whole number of seconds\n");
  process.exit(2);
}
const DATABASE_URL = env.DATABASE_URL;
/** Profile the 1 MiB streaming scenario instead of the mixed one. */
const PROFILE_STREAM = env.BENCH_PROFILE_SCENARIO === "stream";
const PROFILE_TOKENS = env.BENCH_PROFILE_SCENARIO === "tokens";
const PROFILE_SUFFIX = PROFILE_STREAM ? "-stream" : PROFILE_TOKENS ? "-tokens" : "";
const MiB = 2 ** 20;
const NO_SAVE = env.BENCH_NO_SAVE === "1";

/** A Node binary the servers run on: this one, and each of BENCH_NODE. */
type Runtime = { execPath: string; version: string };
const RUNTIMES: Runtime[] = [
  { execPath: process.execPath, version: process.version },
  ...(env.BENCH_NODE ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((execPath) => ({ execPath, version: execFileSync(execPath, ["--version"], { encoding: "utf8" }).trim() })),
].filter((r, i, all) => {
  // Rows are told apart by Node version: a second binary of the same version adds nothing.
  const first = all.findIndex((o) => o.version === r.version) === i;
  if (!first) process.stderr.write(`BENCH_NODE: ${r.execPath} is Node ${r.version} too: not run twice\n`);
  return first;
});
/** With more than one Node, every server's name says which one it runs on. */
const onNode = (name: string, runtime: Runtime) => (RUNTIMES.length > 1 ? `${name} [node ${runtime.version}]` : name);

const pct = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "n/a" : `${(100 * n).toFixed(0)}%`);

const log = (line: string) => process.stderr.write(line + "\n");

// ---------------------------------------------------------------------------------------------- stores

type Backend = "embedded" | "postgres";
type Store = { backend: Backend; dataDir: string; databaseUrl?: string; schema?: string; drop(): Promise<void> };

const cleanups: (() => Promise<void>)[] = [];

function newStore(backend: Backend): Store {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-bench-"));
  const rmDir = async () => rmSync(dataDir, { recursive: true, force: true });
  if (backend === "embedded") {
    cleanups.push(rmDir);
    return { backend, dataDir, drop: rmDir };
  }
  const schema = `kw_bench_${randomBytes(6).toString("hex")}`;
  const url = new URL(DATABASE_URL!);
  url.searchParams.set("schema", schema);
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await rmDir();
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  };
  cleanups.push(drop);
  return { backend, dataDir, databaseUrl: url.toString(), schema, drop };
}

// ---------------------------------------------------------------------------------------------- processes

/** The environment of a child: ours without anything that would configure Keyward behind our back. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "DATABASE_URL" || k === "PORT" || k === "HOST" || k === "LOG_LEVEL" || k.startsWith("KEYWARD_")) continue;
    out[k] = v;
  }
  return { ...out, ...extra };
}

/** A broker's set-up: its database, and the Node it runs on. */
type Variant = { backend: Backend; runtime: Runtime };
const variantName = (v: Variant) => onNode(v.backend, v.runtime);

type Broker = {
  label: string;
  variant: string;
  runtime: Runtime;
  child: Child;
  url: string;
  scenario: Scenario;
  rss: RssSampler;
  /** the embedded PostgreSQL's processes (none on DATABASE_URL) */
  server?: { tree: ProcessTree; memory: TreeMemorySampler };
  startupMs: number;
};

const ADMIN_KEY = "kwa_bench_" + randomBytes(24).toString("hex");

async function startBroker(store: Store, upstreamUrl: string, execArgv: string[] = [], runtime: Runtime = RUNTIMES[0]!): Promise<Broker> {
  const variant = variantName({ backend: store.backend, runtime });
  const label = `keyward (${variant})`;
  const t0 = performance.now();
  const child = await Child.start(label, "broker-process.ts", {
    // The V8 flags `npm start` gives a broker on that Node (bin/v8-flags.js).
    execArgv: [...brokerV8Flags(runtime.version), ...execArgv],
    execPath: runtime.execPath,
    ...(env.BENCH_BROKER_LOG_DIR && {
      stdoutFile: join(env.BENCH_BROKER_LOG_DIR, `broker-${store.backend}-${Date.now()}.log`),
    }),
    env: childEnv({
      // glibc's malloc settings, as `npm start` gives them (bin/malloc-tunables.js).
      ...mallocTunablesEnvironment(env),
      PORT: "0",
      HOST: "127.0.0.1",
      KEYWARD_DATA_DIR: store.dataDir,
      KEYWARD_MASTER_KEY: randomBytes(32).toString("base64"),
      KEYWARD_ADMIN_KEY: ADMIN_KEY,
      KEYWARD_ISSUER: "http://keyward.bench",
      LOG_LEVEL: S.logLevel,
      ...(env.KEYWARD_UPSTREAM_TIMEOUT_MS && { KEYWARD_UPSTREAM_TIMEOUT_MS: env.KEYWARD_UPSTREAM_TIMEOUT_MS }),
      ...(store.databaseUrl && { DATABASE_URL: store.databaseUrl }),
    }),
  });
  const startupMs = performance.now() - t0;
  const rss = new RssSampler(child);
  const tree = store.backend === "embedded" ? ProcessTree.ofEmbeddedServer(store.dataDir) : undefined;
  if (store.backend === "embedded" && !tree) log(`${label}: no embedded PostgreSQL found in ${store.dataDir}: its processes are not measured`);
  const server = tree && { tree, memory: new TreeMemorySampler(tree) };
  const url = `http://127.0.0.1:${child.port}`;
  const scenario = await setupScenario(url, ADMIN_KEY, upstreamUrl, { agents: S.agents, tokensPerAgent: S.tokensPerAgent });
  log(`${label}: started in ${startupMs.toFixed(0)} ms on ${url}, ${scenario.tokens.length} tokens issued`);
  if (scenario.tokenRetries.length) {
    log(`${label}: ${scenario.tokenRetries.length} token requests of the set-up failed and were retried: ${JSON.stringify(scenario.tokenRetries.slice(0, 3))}`);
  }
  return { label, variant, runtime, child, url, scenario, rss, server, startupMs };
}

// ---------------------------------------------------------------------------------------------- measuring

/**
 * `child` is the process that serves the target, whose CPU time per request is reported; `server` the
 * embedded PostgreSQL behind it, whose CPU is reported apart; `node` the Node version it runs on.
 */
type Target = { name: string; kind: ProxyRow["kind"]; url: string; next: (n: number) => RequestSpec; child?: Child; server?: ProcessTree; node: string };

function unexpectedOf(kind: ProxyRow["kind"], load: LoadResult): number {
  let ok = load.statuses["200"] ?? 0;
  if (kind === "keyward" || kind === "floor") ok += load.statuses["403"] ?? 0;
  return load.responses - ok;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the child uses under 5% of a core (or maxMs passed): when autocannon stops, a saturated
 * broker still works through the requests it had queued, which would steal CPU from the next run.
 */
async function waitIdle(child: Child | undefined, maxMs = 5000): Promise<void> {
  if (!child) return;
  const started = Date.now();
  let last = child.cpuMs();
  while (Date.now() - started < maxMs) {
    await sleep(500);
    const now = child.cpuMs();
    if (!(now - last >= 25)) return;
    last = now;
  }
}

/** Share of one core the child uses while nothing is asked of it (timers, resyncs). */
async function idleCpuShare(child: Child, ms = 4000): Promise<number> {
  await waitIdle(child);
  const before = child.cpuMs();
  await sleep(ms);
  return (child.cpuMs() - before) / ms;
}

async function measure(target: Target, connections: number, seconds: number, warmupS = S.warmupS): Promise<LoadResult> {
  await waitIdle(target.child);
  if (warmupS > 0) {
    await runLoad({ baseUrl: target.url, connections, seconds: warmupS, next: target.next });
    await waitIdle(target.child); // the warm-up's abandoned backlog must not count against the run
  }
  const cpuBefore = target.child?.cpuMs() ?? Number.NaN;
  const serverCpuBefore = target.server?.cpuMs() ?? Number.NaN;
  const load = await runLoad({ baseUrl: target.url, connections, seconds, next: target.next });
  // CPU time is far less sensitive than throughput to what else runs on the machine
  load.cpuMsPerRequest = load.responses ? ((target.child?.cpuMs() ?? Number.NaN) - cpuBefore) / load.responses : Number.NaN;
  // read at once: the server's share of the work is done by the time the responses are
  if (target.server) load.serverCpuMsPerRequest = load.responses ? (target.server.cpuMs() - serverCpuBefore) / load.responses : Number.NaN;
  await waitIdle(target.child); // let it finish what it had queued before the next target runs
  const bad = unexpectedOf(target.kind, load);
  log(
    `  c=${String(connections).padEnd(3)} ${target.name.padEnd(20)} ${load.rps.toFixed(0).padStart(7)} req/s  p50 ${load.p50.toFixed(2)} ms  p99 ${load.p99.toFixed(2)} ms  CPU ${load.cpuMsPerRequest?.toFixed(3)} ms/req` +
      (load.serverCpuMsPerRequest !== undefined ? ` (+ PostgreSQL ${load.serverCpuMsPerRequest.toFixed(3)})` : "") +
      (bad || load.errors ? `  (unexpected: ${bad}, errors: ${load.errors}; ${JSON.stringify(load.statuses)})` : ""),
  );
  return load;
}

function proxyRow(c: number, target: Target, load: LoadResult): ProxyRow {
  return {
    c,
    target: target.name,
    kind: target.kind,
    node: target.node,
    load,
    unexpected: unexpectedOf(target.kind, load),
    deniedShare: (load.statuses["403"] ?? 0) / Math.max(1, load.responses),
  };
}

function addRatios(rows: ProxyRow[]): void {
  for (const row of rows) {
    // a broker is compared with the plain proxy on the same Node
    const plain = rows.find((r) => r.c === row.c && r.kind === "plain" && r.node === row.node);
    const direct = rows.find((r) => r.c === row.c && r.kind === "direct");
    if (plain && row.kind !== "plain") row.vsPlain = row.load.rps / plain.load.rps;
    if (plain && (row.kind === "keyward" || row.kind === "floor")) row.cpuVsPlain = (row.load.cpuMsPerRequest ?? Number.NaN) / (plain.load.cpuMsPerRequest ?? Number.NaN);
    if (direct && row.kind !== "direct") row.vsDirect = row.load.rps / direct.load.rps;
  }
}

/** Every target under the same mixed load for S.steadyS, one after the other, before anything is measured (see S.steadyS). */
async function warmToSteadyState(targets: Target[]): Promise<void> {
  log(`warming every server to its steady state: ${S.steadyS} s of mixed calls at c=16 each`);
  for (const t of targets) {
    await runLoad({ baseUrl: t.url, connections: 16, seconds: S.steadyS, next: t.next });
    await waitIdle(t.child);
  }
}

/** Each concurrency level runs every target back to back, so background load hits them alike. */
async function proxyRounds(targets: Target[]): Promise<ProxyRow[]> {
  const rows: ProxyRow[] = [];
  for (const c of S.concurrency) {
    for (const t of targets) rows.push(proxyRow(c, t, await measure(t, c, S.durationS)));
  }
  addRatios(rows);
  return rows;
}

async function rawSigningRate(seconds: number, concurrency: number): Promise<number> {
  const { privateKey } = await generateKeyPair("ES256");
  const sign = () => signBenchToken(privateKey, { clientId: "kwc_" + randomBytes(12).toString("base64url"), grant: randomUUID(), kid: randomUUID() });
  return ratePerSec(seconds, concurrency, sign);
}

async function ratePerSec(seconds: number, concurrency: number, op: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await op();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

async function scryptRate(seconds: number): Promise<number> {
  const secret = "kws_" + randomBytes(32).toString("base64url");
  const hash = await hashClientSecret(secret);
  return ratePerSec(seconds, 4, () => verifyClientSecret(secret, hash));
}

// ---------------------------------------------------------------------------------------------- modes

/** A baseline server (a plain proxy, or a floor) on one Node. */
type Baseline = { label: string; runtime: Runtime; child: Child; url: string };

/** The upstream (on this Node) and a plain proxy on each of `runtimes`. */
async function startBaseline(
  runtimes: Runtime[] = [RUNTIMES[0]!],
): Promise<{ upstream: Child; plain: Child; upstreamUrl: string; plainUrl: string; plains: Baseline[] }> {
  const upstream = await Child.start("upstream", "upstream-process.ts", { env: childEnv({}) });
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  const plains = await startOnEach("plain proxy", "plain-proxy-process.ts", upstreamUrl, runtimes);
  return { upstream, plain: plains[0]!.child, upstreamUrl, plainUrl: plains[0]!.url, plains };
}

/**
 * The design's floor on each of `runtimes` (bench/floor-process.ts): the audit guarantee (an allowed
 * call's two events durable, each before the step after it) and a forward, none of Keyward's features.
 */
const startFloors = (upstreamUrl: string, runtimes: Runtime[]) => startOnEach("design floor", "floor-process.ts", upstreamUrl, runtimes);

/** A baseline server (`script`, forwarding to `upstreamUrl`) on each of `runtimes`, one after the other. */
async function startOnEach(name: string, script: string, upstreamUrl: string, runtimes: Runtime[]): Promise<Baseline[]> {
  const started: Baseline[] = [];
  for (const runtime of runtimes) {
    const label = onNode(name, runtime);
    const child = await Child.start(label, script, { execPath: runtime.execPath, env: childEnv({ BENCH_UPSTREAM_URL: upstreamUrl }) });
    started.push({ label, runtime, child, url: `http://127.0.0.1:${child.port}` });
  }
  return started;
}

const backendsToRun = (): Backend[] =>
  (DATABASE_URL ? (["embedded", "postgres"] as const) : (["embedded"] as const)).filter((b) => !env.BENCH_BACKENDS || env.BENCH_BACKENDS.split(",").includes(b));
/** Every backend on every Node (main mode); the other modes run on this Node only. */
const variantsToRun = (runtimes: Runtime[] = [RUNTIMES[0]!]): Variant[] =>
  runtimes.flatMap((runtime) => backendsToRun().map((backend) => ({ backend, runtime })));
const DEFAULT_NODE = RUNTIMES[0]!.version;

async function runMain(): Promise<void> {
  const started = performance.now();
  log(`Node ${RUNTIMES.map((r) => `${r.version} (${r.execPath})`).join(", ")}`);
  const machine = machineInfo();
  const { upstream, upstreamUrl, plains } = await startBaseline(RUNTIMES);
  const floors = await startFloors(upstreamUrl, RUNTIMES);
  const plainRss = new Map(plains.map((p) => [p.label, new RssSampler(p.child)]));
  const brokers: Broker[] = [];
  for (const v of variantsToRun(RUNTIMES)) brokers.push(await startBroker(newStore(v.backend), upstreamUrl, [], v.runtime));
  const tokens = brokers[0]!.scenario.tokens;
  const brokerTarget = (b: Broker, next: Target["next"]): Target => ({
    name: b.label,
    kind: "keyward",
    url: b.url,
    next,
    child: b.child,
    server: b.server?.tree,
    node: b.runtime.version,
  });

  // Each broker right after the plain proxy on its Node, so that the two see the same background load.
  const targets: Target[] = [
    { name: "direct", kind: "direct", url: upstreamUrl, next: mixedRequest("", tokens), child: upstream, node: DEFAULT_NODE },
    ...plains.flatMap((p): Target[] => [
      { name: p.label, kind: "plain", url: p.url, next: mixedRequest(PROXY_PREFIX, tokens), child: p.child, node: p.runtime.version },
      ...floors
        .filter((f) => f.runtime === p.runtime)
        .map((f): Target => ({ name: f.label, kind: "floor", url: f.url, next: mixedRequest(PROXY_PREFIX, tokens), child: f.child, node: p.runtime.version })),
      ...brokers.filter((b) => b.runtime === p.runtime).map((b) => brokerTarget(b, mixedRequest(PROXY_PREFIX, b.scenario.tokens))),
    ]),
  ];
  const beforeLoad = new Map<string, number>([
    ...[...plainRss].map(([label, r]) => [label, r.sample()] as [string, number]),
    ...brokers.map((b) => [b.label, b.rss.sample()] as [string, number]),
  ]);
  const serverBeforeLoad = new Map(brokers.filter((b) => b.server).map((b) => [b.label, b.server!.memory.sample()]));

  // Streaming runs first, from the post-set-up baseline: a heap already grown by other phases could hide growth.
  log(`streaming 1 MiB at c=${S.streamConnections}`);
  const stream: StreamRow[] = [];
  const streamTargets: { t: Target; sampler?: RssSampler }[] = [
    { t: { name: "direct", kind: "direct", url: upstreamUrl, next: streamRequest("", tokens), child: upstream, node: DEFAULT_NODE } },
    ...plains.flatMap((p) => [
      {
        t: { name: p.label, kind: "plain" as const, url: p.url, next: streamRequest(PROXY_PREFIX, tokens), child: p.child, node: p.runtime.version },
        sampler: plainRss.get(p.label),
      },
      ...brokers
        .filter((b) => b.runtime === p.runtime)
        .map((b) => ({ t: brokerTarget(b, streamRequest(PROXY_PREFIX, b.scenario.tokens)), sampler: b.rss })),
    ]),
  ];
  for (const { t, sampler } of streamTargets) {
    // warm-up at c=1 (at most 1 MiB in flight), so the measured run is not a cold JIT
    await runLoad({ baseUrl: t.url, connections: 1, seconds: S.warmupS, next: t.next });
    const before = sampler?.openWindow() ?? Number.NaN;
    const load = await measure(t, S.streamConnections, S.durationS, 0);
    const peak = sampler?.windowPeak() ?? Number.NaN;
    const after = sampler?.sample() ?? Number.NaN;
    const bad = unexpectedOf(t.kind, load) + (load.statuses["403"] ?? 0);
    stream.push({ target: t.name, kind: t.kind, node: t.node, load, unexpected: bad, ...(sampler && { rss: { before, peak, after } }) });
  }

  // Which phase a broker's RSS peak came from: each broker's peak over the phase that just ended.
  const phaseStart = new Map(brokers.map((b) => [b, 0]));
  const logRssPeaks = (phase: string) => {
    const peaks = brokers.map((b) => {
      const samples = b.rss.samples.slice(phaseStart.get(b));
      phaseStart.set(b, b.rss.samples.length);
      return `${b.label} ${mib(Math.max(...samples.map((x) => x.rss)))} MiB`;
    });
    log(`  RSS peak during ${phase}: ${peaks.join(", ")}`);
  };
  logRssPeaks("set-up and streaming 1 MiB");
  if (S.steadyS > 0) {
    await warmToSteadyState(targets);
    logRssPeaks("the warm-up");
  }
  log(`forwarding: ${S.durationS} s per run after ${S.warmupS} s warm-up`);
  const proxy = await proxyRounds(targets);

  logRssPeaks("forwarding");
  log(`one ${S.bigStreamMiB} MiB response through each proxy`);
  const bigStream: MainResults["bigStream"] = [];
  for (const { t, sampler } of streamTargets) {
    if (!sampler) continue;
    await waitIdle(t.child);
    const spec = t.next(0);
    const before = sampler.openWindow();
    const started = performance.now();
    const res = await fetch(t.url + spec.path.replace("/stream/1mib", `/stream/${S.bigStreamMiB}mib`), { headers: spec.headers });
    let bytes = 0;
    for await (const chunk of res.body ?? []) bytes += (chunk as Uint8Array).length;
    const seconds = (performance.now() - started) / 1000;
    const peak = sampler.windowPeak();
    bigStream.push({ target: t.name, status: res.status, bytes, seconds, rss: { before, peak, after: sampler.sample() } });
    log(`  ${t.name}: ${res.status}, ${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(1)} s, RSS ${mib(before)} → peak ${mib(peak)} MiB`);
  }

  // Response redaction (src/redaction), always on: the same size of response, but every 64 KiB chunk
  // repeats the injected secret 4 times (once across the chunk boundary). Memory must stay flat, and the
  // throughput within 10% of the plain proxy's (which redacts nothing) on the same bytes. One transfer
  // takes well under a second: each target runs once per round, in a rotated order, and the median of
  // the per-round ratios counts. A first round warms each target up and is not counted: the broker's
  // first redacted transfer runs code not yet optimised (measured: 650-1,000 ms of CPU, then 310-450).
  logRssPeaks("the large response");
  log(`one ${S.bigStreamMiB} MiB response full of the upstream's secret, redacted on the way (${S.bigStreamRounds} rounds)`);
  const redactedStream: {
    target: string;
    status: number;
    bytes: number;
    seconds: number;
    allSeconds: number[];
    /** The proxy's CPU time per transfer (median): what a busy machine turns into lost throughput. */
    cpuMs: number;
    allCpuMs: number[];
    redactions: number;
    leaked: boolean;
    rss: { before: number; peak: number };
  }[] = [];
  const marker = Buffer.from("[redacted-by-keyward]");
  const secret = Buffer.from(UPSTREAM_SECRET);
  const redactedTargets = streamTargets.filter((x) => x.sampler);
  const leakedWhileWarming = new Set<string>();
  for (let round = -1; round < S.bigStreamRounds; round++) {
    for (let i = 0; i < redactedTargets.length; i++) {
      // Rotated each round, so that no target always runs first (or right after another's garbage).
      const { t, sampler } = redactedTargets[(i + round + redactedTargets.length) % redactedTargets.length]!;
      await waitIdle(t.child);
      const spec = t.next(0);
      const before = sampler!.openWindow();
      const cpuBefore = t.child?.cpuMs() ?? Number.NaN;
      const started = performance.now();
      const res = await fetch(t.url + spec.path.replace("/stream/1mib", `/stream/${S.bigStreamMiB}mib-secrets`), { headers: spec.headers });
      let bytes = 0;
      let redactions = 0;
      let leaked = false;
      let tail = Buffer.alloc(0);
      for await (const chunk of res.body ?? []) {
        const data = Buffer.concat([tail, chunk as Uint8Array]);
        bytes += (chunk as Uint8Array).length;
        for (let at = data.indexOf(marker, 0); at !== -1; at = data.indexOf(marker, at + 1)) if (at + marker.length > tail.length) redactions++;
        if (data.includes(secret)) leaked = true;
        tail = Buffer.from(data.subarray(Math.max(0, data.length - Math.max(marker.length, secret.length))));
      }
      const seconds = (performance.now() - started) / 1000;
      const cpuMs = (t.child?.cpuMs() ?? Number.NaN) - cpuBefore;
      const peak = sampler!.windowPeak();
      if (round < 0) {
        log(`  ${t.name} (warm-up, not counted): ${res.status}, ${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(2)} s, CPU ${cpuMs.toFixed(0)} ms, leaked: ${leaked}`);
        // Not timed, but a leak is a leak.
        if (leaked) leakedWhileWarming.add(t.name);
        continue;
      }
      const seen = redactedStream.find((x) => x.target === t.name);
      if (!seen) {
        const everLeaked = leaked || leakedWhileWarming.has(t.name);
        redactedStream.push({ target: t.name, status: res.status, bytes, seconds, allSeconds: [seconds], cpuMs, allCpuMs: [cpuMs], redactions, leaked: everLeaked, rss: { before, peak } });
      }
      else {
        seen.allSeconds.push(seconds);
        seen.seconds = median(seen.allSeconds);
        seen.allCpuMs.push(cpuMs);
        seen.cpuMs = median(seen.allCpuMs);
        if (res.status !== 200) seen.status = res.status;
        seen.bytes = Math.min(seen.bytes, bytes);
        seen.redactions = Math.min(seen.redactions, redactions);
        seen.leaked ||= leaked;
        if (peak - before > seen.rss.peak - seen.rss.before) seen.rss = { before, peak };
      }
      log(`  ${t.name}: ${res.status}, ${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(2)} s, CPU ${cpuMs.toFixed(0)} ms, ${redactions} redactions, leaked: ${leaked}`);
    }
  }

  logRssPeaks("the redacted responses");
  log(`token issuance at c=${S.tokenConnections}, ${tokenDurationS} s each after ${tokenWarmupS} s of warm-up`);
  const rawSignPerSec = await rawSigningRate(tokenDurationS, S.tokenConnections);
  log(`  raw jose ES256 signing: ${rawSignPerSec.toFixed(0)}/s`);
  // The floor of any token endpoint here: HTTP, a JSON body and the signature, nothing else; and the same
  // with each token's record made durable before the answer (issue 14's guarantee, as the broker keeps it).
  const measureTokenFloor = async (name: string, durable: boolean): Promise<LoadResult> => {
    const child = await Child.start(name, "token-floor-process.ts", { env: childEnv(durable ? { BENCH_TOKEN_FLOOR_DURABLE: "1" } : {}) });
    const target: Target = { name, kind: "floor", url: `http://127.0.0.1:${child.port}`, next: tokenRequest(brokers[0]!.scenario.agents), child, node: DEFAULT_NODE };
    const load = await measure(target, S.tokenConnections, tokenDurationS, tokenWarmupS);
    await child.stop();
    return load;
  };
  const tokenFloor = await measureTokenFloor("token floor", false);
  const durableTokenFloor = await measureTokenFloor("durable token floor", true);
  const endpoint: MainResults["tokens"]["endpoint"] = [];
  for (const b of brokers) {
    const t: Target = { ...brokerTarget(b, tokenRequest(b.scenario.agents)), name: `${b.label} tokens` };
    const load = await measure(t, S.tokenConnections, tokenDurationS, tokenWarmupS);
    endpoint.push({ backend: b.variant, load, unexpected: load.responses - (load.statuses["200"] ?? 0) });
  }
  const scryptVerifyPerSec = await scryptRate(Math.min(3, tokenDurationS));
  log(`  scrypt verification alone: ${scryptVerifyPerSec.toFixed(1)}/s`);

  logRssPeaks("token issuance");
  const rss: MainResults["rss"] = [];
  for (const p of plains) {
    const r = plainRss.get(p.label)!;
    rss.push({ process: p.label, before: beforeLoad.get(p.label)!, peak: r.peak, after: r.sample(), memory: await p.child.call<NodeJS.MemoryUsage>("memory") });
  }
  for (const b of brokers) {
    rss.push({ process: b.label, before: beforeLoad.get(b.label)!, peak: b.rss.peak, after: b.rss.sample(), memory: await b.child.call<NodeJS.MemoryUsage>("memory") });
  }
  const embeddedServers: MainResults["embeddedServers"] = [];
  for (const b of brokers) {
    if (!b.server) continue;
    const before = serverBeforeLoad.get(b.label)!;
    const after = b.server.memory.sample();
    b.server.memory.stop();
    embeddedServers.push({
      broker: b.label,
      postmasterPid: b.server.tree.rootPid,
      processes: { before: before.processes, max: b.server.memory.maxProcesses, after: after.processes },
      rss: { before: before.rss, peak: b.server.memory.peakRss, after: after.rss },
      pss: { before: before.pss, peak: b.server.memory.peakPss, after: after.pss },
    });
  }

  const targetsChecked: TargetCheck[] = [];
  for (const b of brokers) {
    // Issue 14's targets: ≥ 0.85× the plain proxy and ≤ 1.5× its CPU per call under load (c ≥ 16), ≥ 0.5× at c=1.
    const rows = proxy.filter((r) => r.target === b.label);
    for (const r of rows) {
      const min = r.c >= 16 ? 0.85 : 0.5;
      targetsChecked.push({
        backend: b.variant,
        target: `c=${r.c}: forwarding throughput ÷ plain proxy`,
        value: pct(r.vsPlain),
        threshold: `≥ ${(100 * min).toFixed(0)}%`,
        pass: (r.vsPlain ?? 0) >= min && r.unexpected + r.load.errors === 0,
      });
      if (r.c >= 16) {
        targetsChecked.push({
          backend: b.variant,
          target: `c=${r.c}: broker CPU per call ÷ plain proxy's`,
          value: `${(r.cpuVsPlain ?? Number.NaN).toFixed(2)}× (${r.load.cpuMsPerRequest?.toFixed(3)} ms)`,
          threshold: "≤ 1.5×",
          pass: (r.cpuVsPlain ?? Number.POSITIVE_INFINITY) <= 1.5,
        });
      }
    }
    const k16 = proxy.find((r) => r.c === 16 && r.target === b.label);
    const p16 = proxy.find((r) => r.c === 16 && r.kind === "plain" && r.node === b.runtime.version);
    if (k16 && p16) {
      const added = k16.load.p99 - p16.load.p99;
      targetsChecked.push({ backend: b.variant, target: "p99 added over plain proxy, c=16", value: `${added.toFixed(2)} ms`, threshold: "≤ 1.5 ms", pass: added <= 1.5 });
    }
    // Buffering whole responses would add about c × 1 MiB over what a streaming proxy needs; the plain
    // proxy (which streams) is the reference for GC and socket-buffer noise.
    const s = stream.find((r) => r.target === b.label)!;
    const ps = stream.find((r) => r.kind === "plain" && r.node === b.runtime.version)!;
    const growth = s.rss!.peak - s.rss!.before;
    const plainGrowth = Math.max(0, ps.rss!.peak - ps.rss!.before);
    const limit = (S.streamConnections * MiB) / 2;
    targetsChecked.push({
      backend: b.variant,
      target: `streaming 1 MiB at c=${S.streamConnections}: RSS growth beyond the plain proxy's (flat = under half of c × 1 MiB)`,
      value: `+${mib(growth)} MiB (${mib(s.rss!.before)} → peak ${mib(s.rss!.peak)}) vs plain proxy +${mib(plainGrowth)} MiB; ${s.unexpected + s.load.errors} failed`,
      threshold: `< +${mib(limit)} MiB beyond`,
      pass: growth - plainGrowth < limit && s.unexpected + s.load.errors === 0,
    });
    const big = bigStream.find((x) => x.target === b.label)!;
    const bigGrowth = big.rss.peak - big.rss.before;
    targetsChecked.push({
      backend: b.variant,
      target: `one ${S.bigStreamMiB} MiB response: RSS growth (buffering it would add its size)`,
      value: `+${mib(bigGrowth)} MiB (${mib(big.rss.before)} → peak ${mib(big.rss.peak)}), ${mib(big.bytes)} MiB received, status ${big.status}`,
      threshold: `< ${mib((S.bigStreamMiB * MiB) / 4)} MiB`,
      pass: big.status === 200 && big.bytes === S.bigStreamMiB * MiB && bigGrowth < (S.bigStreamMiB * MiB) / 4,
    });
    const redacted = redactedStream.find((x) => x.target === b.label)!;
    const plainRedacted = redactedStream.find((x) => x.target === onNode("plain proxy", b.runtime))!;
    const redactedGrowth = redacted.rss.peak - redacted.rss.before;
    // Paired by round: each round's transfers run seconds apart, so the ratio within a round cancels the
    // load other work puts on this shared machine, which drifts over the minute the rounds take.
    const throughput = median(redacted.allSeconds.map((seconds, round) => plainRedacted.allSeconds[round]! / seconds));
    targetsChecked.push({
      backend: b.variant,
      target: `one ${S.bigStreamMiB} MiB response full of secrets, redacted: throughput ÷ plain proxy, RSS growth, nothing leaked`,
      value: `${(100 * throughput).toFixed(0)}% (median over ${redacted.allSeconds.length} rounds of the plain proxy's time ÷ the broker's in the same round; median times ${redacted.seconds.toFixed(2)} s vs ${plainRedacted.seconds.toFixed(2)} s; proxy CPU ${redacted.cpuMs.toFixed(0)} vs ${plainRedacted.cpuMs.toFixed(0)} ms per transfer), +${mib(redactedGrowth)} MiB, ${redacted.redactions} redactions, leaked: ${redacted.leaked}`,
      threshold: `≥ 90%, < ${mib((S.bigStreamMiB * MiB) / 4)} MiB, no leak`,
      pass: redacted.status === 200 && !redacted.leaked && redacted.redactions > 0 && throughput >= 0.9 && redactedGrowth < (S.bigStreamMiB * MiB) / 4,
    });
    const e = endpoint.find((x) => x.backend === b.variant)!;
    targetsChecked.push({
      backend: b.variant,
      target: "token issuance ÷ raw ES256 signing (incl. DB write)",
      value:
        `${((100 * e.load.rps) / rawSignPerSec).toFixed(1)}% (${e.load.rps.toFixed(0)}/s vs ${rawSignPerSec.toFixed(0)}/s); ` +
        `a bare signing endpoint: ${((100 * tokenFloor.rps) / rawSignPerSec).toFixed(1)}%, ` +
        `one that also makes each token's record durable: ${((100 * durableTokenFloor.rps) / rawSignPerSec).toFixed(1)}%`,
      threshold: "≥ 50%",
      pass: e.load.rps / rawSignPerSec >= 0.5 && e.unexpected === 0,
    });
    const peak = b.rss.peak;
    const server = embeddedServers.find((x) => x.broker === b.label);
    targetsChecked.push({
      backend: b.variant,
      target: "broker RSS peak over the run (the embedded PostgreSQL's processes apart, below)",
      value: `${mib(peak)} MiB` + (server ? `; embedded PostgreSQL: PSS peak ${mib(server.pss.peak)} MiB, RSS sum peak ${mib(server.rss.peak)} MiB` : ""),
      threshold: "< 200 MiB",
      pass: peak < 200 * MiB,
    });
  }

  for (const b of brokers) await waitIdle(b.child, 15_000);
  machine.loadavgEnd = loadavg();
  const results: MainResults = {
    mode: "main",
    startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
    seconds: (performance.now() - started) / 1000,
    machine,
    settings: { ...S, tokenDurationS, backends: brokers.map((b) => b.variant) },
    nodes: RUNTIMES.map((r) => r.version),
    backends: brokers.map((b) => b.variant),
    proxy,
    stream: { connections: S.streamConnections, rows: stream },
    bigStream,
    tokens: { connections: S.tokenConnections, rawSignPerSec, scryptVerifyPerSec, floor: tokenFloor, durableFloor: durableTokenFloor, endpoint },
    rss,
    embeddedServers,
    targets: targetsChecked,
  };
  const md = renderMain(results);
  process.stdout.write("\n" + md + "\n");
  save(results, md);
}

async function runScale(): Promise<void> {
  const started = performance.now();
  const machine = machineInfo();
  const backend: Backend = DATABASE_URL ? "postgres" : "embedded";
  const store = () => newStore(backend);
  const { plain, plainUrl, upstreamUrl } = await startBaseline();
  const counts = seedCountsFromEnv();

  const runOn = async (
    store: Store,
  ): Promise<{ rows: ProxyRow[]; startupMs: number; rss: Rss; serverPssPeak?: number; tokenRetries: Scenario["tokenRetries"]; idleCpu: number }> => {
    const broker = await startBroker(store, upstreamUrl);
    const targets: Target[] = [
      { name: "plain proxy", kind: "plain", url: plainUrl, next: mixedRequest(PROXY_PREFIX, broker.scenario.tokens), child: plain, node: DEFAULT_NODE },
      {
        name: broker.label,
        kind: "keyward",
        url: broker.url,
        next: mixedRequest(PROXY_PREFIX, broker.scenario.tokens),
        child: broker.child,
        server: broker.server?.tree,
        node: DEFAULT_NODE,
      },
    ];
    const idleCpu = await idleCpuShare(broker.child);
    log(`  idle broker CPU: ${(100 * idleCpu).toFixed(1)}% of a core`);
    const before = broker.rss.sample();
    if (S.steadyS > 0) await warmToSteadyState(targets);
    const rows = await proxyRounds(targets);
    await waitIdle(broker.child, 15_000);
    const rss = { before, peak: broker.rss.peak, after: broker.rss.sample() };
    broker.rss.stop();
    broker.server?.memory.stop();
    await broker.child.stop();
    const serverPssPeak = broker.server?.memory.peakPss;
    return { rows, startupMs: broker.startupMs, rss, serverPssPeak, tokenRetries: broker.scenario.tokenRetries, idleCpu };
  };

  log(`scale check on ${backend}: empty database first`);
  const emptyStore = store();
  const empty = await runOn(emptyStore);
  await emptyStore.drop();

  log(`seeding ${JSON.stringify(counts)} (${backend})`);
  const seededStore = store();
  const db = await openDatabase(
    seededStore.backend === "postgres" ? { kind: "postgres", url: seededStore.databaseUrl! } : { kind: "embedded", dataDir: seededStore.dataDir },
  );
  let seed;
  try {
    await migrate(db);
    seed = await seedDatabase(db, counts, log);
  } finally {
    await db.close();
  }
  log("seeded database:");
  const seeded = await runOn(seededStore);
  await seededStore.drop();

  const targets: TargetCheck[] = [];
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(0)}%`;
  for (const c of S.concurrency) {
    const e = empty.rows.find((r) => r.c === c && r.kind === "keyward")!;
    const s = seeded.rows.find((r) => r.c === c && r.kind === "keyward")!;
    const change = (s.vsPlain ?? 0) / (e.vsPlain ?? 1) - 1;
    targets.push({
      backend,
      target: `c=${c}: throughput ÷ plain proxy, seeded vs empty`,
      value: `${(100 * (s.vsPlain ?? 0)).toFixed(1)}% vs ${(100 * (e.vsPlain ?? 0)).toFixed(1)}% (${signed(change)})` +
        (s.unexpected ? `; ${s.unexpected} unexpected statuses ${JSON.stringify(s.load.statuses)}` : ""),
      threshold: "within ±10%",
      pass: Math.abs(change) <= 0.1 && s.unexpected === 0,
    });
    // The broker's own CPU per request does not depend on how the plain proxy fared in its slot.
    const cpuChange = (s.load.cpuMsPerRequest ?? Number.NaN) / (e.load.cpuMsPerRequest ?? Number.NaN) - 1;
    targets.push({
      backend,
      target: `c=${c}: broker CPU ms per request, seeded vs empty`,
      value: `${s.load.cpuMsPerRequest?.toFixed(2)} vs ${e.load.cpuMsPerRequest?.toFixed(2)} ms (${signed(cpuChange)})`,
      threshold: "within ±10%",
      pass: Math.abs(cpuChange) <= 0.1,
    });
    const ep = empty.rows.find((r) => r.c === c && r.kind === "plain")!;
    const sp = seeded.rows.find((r) => r.c === c && r.kind === "plain")!;
    const pe = e.load.p99 / ep.load.p99;
    const ps = s.load.p99 / sp.load.p99;
    targets.push({
      backend,
      target: `c=${c}: p99 ÷ plain proxy p99, seeded vs empty`,
      value: `${ps.toFixed(2)}× vs ${pe.toFixed(2)}× (${signed(ps / pe - 1)})`,
      threshold: "within ±10%",
      pass: Math.abs(ps / pe - 1) <= 0.1,
    });
  }
  machine.loadavgEnd = loadavg();
  const results: ScaleResults = {
    mode: "scale",
    startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
    seconds: (performance.now() - started) / 1000,
    machine,
    settings: { durationS: S.durationS, warmupS: S.warmupS, steadyS: S.steadyS, tokenWarmupS, concurrency: S.concurrency, logLevel: S.logLevel },
    backend,
    seed,
    startupMs: { empty: empty.startupMs, seeded: seeded.startupMs },
    setupTokenFailures: { empty: empty.tokenRetries, seeded: seeded.tokenRetries },
    idleCpuShare: { empty: empty.idleCpu, seeded: seeded.idleCpu },
    empty: empty.rows,
    seeded: seeded.rows,
    rss: { empty: empty.rss, seeded: seeded.rss },
    ...(empty.serverPssPeak !== undefined && seeded.serverPssPeak !== undefined && { serverPssPeak: { empty: empty.serverPssPeak, seeded: seeded.serverPssPeak } }),
    targets,
  };
  const md = renderScale(results);
  process.stdout.write("\n" + md + "\n");
  save(results, md);
}

type TableStats = Record<string, { scans: number; inserted: number }>;

/** Per-table scan and insert counters of a bench schema: how many statements the broker ran. */
async function pgTableStats(schema: string): Promise<TableStats> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ relname: string; scans: string; inserted: string }>(
      `SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS scans, n_tup_ins AS inserted
       FROM pg_stat_user_tables WHERE schemaname = $1`,
      [schema],
    );
    return Object.fromEntries(rows.map((r) => [r.relname, { scans: Number(r.scans), inserted: Number(r.inserted) }]));
  } finally {
    await client.end();
  }
}

/** Statements per proxied request, from the difference of two snapshots (backends flush stats within ~1 s). */
function statementsPerRequest(before: TableStats, after: TableStats, requests: number): Record<string, { scans: number; inserted: number }> {
  const out: Record<string, { scans: number; inserted: number }> = {};
  for (const [table, a] of Object.entries(after)) {
    const b = before[table] ?? { scans: 0, inserted: 0 };
    const scans = (a.scans - b.scans) / requests;
    const inserted = (a.inserted - b.inserted) / requests;
    if (scans > 0.001 || inserted > 0.001) out[table] = { scans: Number(scans.toFixed(2)), inserted: Number(inserted.toFixed(2)) };
  }
  return out;
}

async function runProfile(): Promise<void> {
  const machine = machineInfo();
  const { upstreamUrl } = await startBaseline();
  const dir = join(BENCH_DIR, "profiles");
  mkdirSync(dir, { recursive: true });
  const runs: ProfileResults["runs"] = [];
  for (const v of variantsToRun()) {
    const backend = variantName(v);
    // One folder per run: node writes one profile per thread, named
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is thread 0.
    const name = `keyward-${backend.replace(/[^a-z0-9.]+/gi, "-")}${PROFILE_SUFFIX}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    const runDir = join(dir, name);
    mkdirSync(runDir, { recursive: true });
    const store = newStore(v.backend);
    const broker = await startBroker(store, upstreamUrl, ["--cpu-prof", `--cpu-prof-dir=${runDir}`]);
    const next = PROFILE_STREAM
      ? streamRequest(PROXY_PREFIX, broker.scenario.tokens)
      : PROFILE_TOKENS
        ? tokenRequest(broker.scenario.agents)
        : mixedRequest(PROXY_PREFIX, broker.scenario.tokens);
    const target: Target = { name: broker.label, kind: "keyward", url: broker.url, next, node: DEFAULT_NODE };
    await runLoad({ baseUrl: broker.url, connections: 16, seconds: 2, next: target.next });
    let before: TableStats | undefined;
    if (store.schema) {
      await sleep(2000);
      before = await pgTableStats(store.schema);
    }
    const startUs = await broker.child.call<number>("clockUs");
    const load = await runLoad({ baseUrl: broker.url, connections: S.profileConnections, seconds: S.profileDurationS, next: target.next });
    const endUs = await broker.child.call<number>("clockUs");
    let statements: ReturnType<typeof statementsPerRequest> | undefined;
    if (store.schema && before) {
      await sleep(2000);
      // autocannon drops the responses in flight when it stops; they were still executed: count them too
      statements = statementsPerRequest(before, await pgTableStats(store.schema), load.responses + S.profileConnections);
      log(`  statements per proxied request (PostgreSQL table stats): ${JSON.stringify(statements)}`);
    }
    log(`  ${broker.label}: ${load.rps.toFixed(0)} req/s under the profiler, p99 ${load.p99.toFixed(2)} ms, statuses ${JSON.stringify(load.statuses)}`);
    broker.rss.stop();
    broker.server?.memory.stop();
    await broker.child.stop(120_000); // the profile is written at exit: give it time
    await store.drop();
    const mainThread = readdirSync(runDir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
    if (!mainThread) throw new Error(`no main-thread profile in ${runDir}: ${readdirSync(runDir).join(", ")}`);
    const file = join(runDir, mainThread);
    const summary = summariseProfile(file, 40, { startUs, endUs });
    process.stdout.write(`\n${formatProfileSummary(summary)}\n`);
    runs.push({ backend, load, profileFile: `bench/profiles/${name}/${mainThread}`, summary, ...(statements && { statements }) });
  }
  machine.loadavgEnd = loadavg();
  const results: ProfileResults = {
    mode: PROFILE_STREAM ? "profile-stream" : PROFILE_TOKENS ? "profile-tokens" : "profile",
    startedAt: new Date().toISOString(),
    machine,
    settings: { connections: S.profileConnections, durationS: S.profileDurationS, logLevel: S.logLevel, scenario: PROFILE_STREAM ? "stream 1 MiB" : PROFILE_TOKENS ? "token issuance" : "mixed" },
    runs,
  };
  save(results, renderProfile(results));
}

// ---------------------------------------------------------------------------------------------- soak

/** One broker, on PostgreSQL when DATABASE_URL is set, else on the embedded database. */
async function runSoakMode(): Promise<boolean> {
  const backend: Backend = DATABASE_URL ? "postgres" : "embedded";
  const upstream = await Child.start("upstream", "upstream-process.ts", { env: childEnv({}) });
  const store = newStore(backend);
  const broker = await startBroker(store, `http://127.0.0.1:${upstream.port}`);
  log(`soak: ${SOAK_SECONDS} s at c=64 on ${backend}`);
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  const result = await runSoak({
    seconds: SOAK_SECONDS,
    connections: 64,
    adminKey: ADMIN_KEY,
    log,
    broker: { child: broker.child, url: broker.url, scenario: broker.scenario, schema: store.schema, dataDir: store.dataDir },
    databaseUrl: DATABASE_URL,
  });
  broker.rss.stop();
  machine.loadavgEnd = loadavg();
  const results: SoakResults = { mode: "soak", startedAt, machine, settings: { seconds: SOAK_SECONDS, connections: 64, backend }, ...result };
  save(results, renderSoak(results));
  log(result.passed ? "soak: passed" : "soak: FAILED (see above)");
  return result.passed;
}

// ---------------------------------------------------------------------------------------------- main

function save(results: Parameters<typeof saveResults>[0], markdown: string): void {
  if (NO_SAVE) {
    log("\nBENCH_NO_SAVE=1: bench/RESULTS.md and bench/results.json left as they were");
    return;
  }
  saveResults(results, markdown);
  log(`\nwrote ${join(BENCH_DIR, "results.json")} and ${join(BENCH_DIR, "RESULTS.md")}`);
}

async function cleanup(): Promise<void> {
  await stopAllChildren();
  for (const c of cleanups.splice(0)) {
    try {
      await c();
    } catch (err) {
      log(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping servers`);
    void cleanup().finally(() => {
      killAllChildrenSync();
      process.exit(130);
    });
  });
}

let exitCode = 0;
try {
  buildChildren();
  if (MODE === "scale") await runScale();
  else if (MODE === "profile") await runProfile();
  else if (MODE === "soak") exitCode = (await runSoakMode()) ? 0 : 1;
  else if (MODE === "tunnel") await runTunnelBench({ settings: S, adminKey: ADMIN_KEY, dataDir: newStore("embedded").dataDir, childEnv, log, save });
  else await runMain();
} catch (err) {
  log(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
