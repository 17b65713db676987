/**
 * `npm run bench -- --tunnel`: what transparent mode costs. The main benchmark's mix (80% allowed, 20%
 * denied, bench/scenario.ts) to one HTTPS upstream whose certificate comes from a private CA, four ways,
 * back to back at each concurrency of the run (BENCH_CONCURRENCY, 1,16,64), reported as ratios:
 *
 *   direct            the client talks TLS to the upstream itself
 *   plain TLS proxy   CONNECT; TLS terminated with a certificate for the host; forwarded over TLS; no
 *                     checks (bench/plain-tls-proxy-process.ts): the floor of any TLS-terminating proxy
 *   keyward tunnel    CONNECT to Keyward's forward proxy with an agent token; TLS terminated with a
 *                     certificate from Keyward's CA; each request takes the /proxy/ route's steps and is
 *                     forwarded over TLS
 *   keyward /proxy/   plain HTTP to Keyward's main port with a bearer token, forwarded over TLS
 *
 * Every server is its own process (bench/*-process.ts) and its CPU time per call is read from /proc, the
 * broker's embedded PostgreSQL apart. autocannon speaks neither CONNECT nor TLS inside a tunnel, so the
 * load here is undici's, the same for all four: each of c workers sends one request after another on its
 * own keep-alive connection (through a proxy, its own tunnel). Keyward's workers each hold one of the
 * scenario's 32 tokens, in the tunnel's CONNECT or as the /proxy/ calls' bearer: a tunnel keeps the token
 * it was opened with, so the /proxy/ route here does the same, where the main benchmark rotates it per request.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { Client, ProxyAgent, type Dispatcher } from "undici";
import { createCaCertificate, issueHostCertificate, newRsaKeyPem } from "../src/forward-proxy/x509.js";
import { Child, ProcessTree } from "./child.js";
import { percentile, type LoadResult, type RequestSpec } from "./load.js";
import { machineInfo, machineLine, proxyTable, table, type ProxyRow, type TunnelResults } from "./report.js";
import { mixedRequest, PROXY_PREFIX, setupScenario } from "./scenario.js";

export type TunnelBenchContext = {
  settings: { durationS: number; warmupS: number; concurrency: number[]; agents: number; tokensPerAgent: number; logLevel: string };
  adminKey: string;
  /** the embedded PostgreSQL's data dir, removed by the caller */
  dataDir: string;
  /** the environment of a child: the caller's, without anything that would configure Keyward behind its back */
  childEnv: (extra: Record<string, string>) => NodeJS.ProcessEnv;
  log: (line: string) => void;
  save: (results: TunnelResults, markdown: string) => void;
};

/** One worker's connection: where its requests go, the prefix their paths take there, and their bearer if any. */
type Connection = { dispatcher: Dispatcher; origin: string; prefix: string; authorization?: string };
type Target = { name: string; kind: ProxyRow["kind"]; child: Child; server?: ProcessTree; connect: (worker: number) => Connection };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Until the process uses under 5% of a core (at most 5 s): a saturated server still works through its backlog. */
async function settle(child: Child): Promise<void> {
  for (let i = 0, last = child.cpuMs(); i < 10; i++) {
    await sleep(500);
    const now = child.cpuMs();
    if (!(now - last >= 25)) return;
    last = now;
  }
}

/** `connections` workers, each on its own connection, sending `next(n)` one after another for `seconds`. */
async function drive(connections: Connection[], seconds: number, next: (n: number) => RequestSpec): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let counter = 0;
  let bytes = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    connections.map(async (c) => {
      while (performance.now() < deadline) {
        const spec = next(counter++);
        // Through a tunnel the token is the tunnel's: the request carries none, as a CLI's would carry none of Keyward's.
        const { authorization: _rotated, ...rest } = spec.headers;
        const headers = { ...rest, ...(c.authorization && { authorization: c.authorization }), ...(spec.body !== undefined && { "content-type": "application/json" }) };
        const t0 = performance.now();
        try {
          const res = await c.dispatcher.request({ origin: c.origin, path: c.prefix + spec.path, method: spec.method, headers, body: spec.body });
          bytes += (await res.body.arrayBuffer()).byteLength;
          latencies.push(performance.now() - t0);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    connections: connections.length,
    seconds: elapsed,
    responses: latencies.length,
    rps: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    bytesPerSec: bytes / elapsed,
    errors,
    timeouts: 0,
    statuses,
  };
}

async function measure(ctx: TunnelBenchContext, target: Target, c: number, next: (n: number) => RequestSpec): Promise<ProxyRow> {
  const connections = Array.from({ length: c }, (_, i) => target.connect(i));
  try {
    await settle(target.child);
    // The warm-up opens the tunnels and connections the measured run then keeps using.
    if (ctx.settings.warmupS > 0) await drive(connections, ctx.settings.warmupS, next);
    await settle(target.child);
    const cpuBefore = target.child.cpuMs();
    const serverCpuBefore = target.server?.cpuMs() ?? Number.NaN;
    const load = await drive(connections, ctx.settings.durationS, next);
    load.cpuMsPerRequest = (target.child.cpuMs() - cpuBefore) / load.responses;
    if (target.server) load.serverCpuMsPerRequest = (target.server.cpuMs() - serverCpuBefore) / load.responses;
    const ok = (load.statuses["200"] ?? 0) + (target.kind === "keyward" ? (load.statuses["403"] ?? 0) : 0);
    const row: ProxyRow = { c, target: target.name, kind: target.kind, load, unexpected: load.responses - ok, deniedShare: (load.statuses["403"] ?? 0) / Math.max(1, load.responses) };
    ctx.log(
      `  c=${String(c).padEnd(3)} ${target.name.padEnd(18)} ${load.rps.toFixed(0).padStart(6)} req/s  p50 ${load.p50.toFixed(2)} ms  p99 ${load.p99.toFixed(2)} ms  CPU ${load.cpuMsPerRequest.toFixed(3)} ms/req` +
        (row.unexpected || load.errors ? `  (unexpected: ${row.unexpected}, errors: ${load.errors}; ${JSON.stringify(load.statuses)})` : ""),
    );
    return row;
  } finally {
    await Promise.all(connections.map((conn) => conn.dispatcher.close()));
  }
}

export async function runTunnelBench(ctx: TunnelBenchContext): Promise<void> {
  const started = performance.now();
  const machine = machineInfo();
  // The upstream's private CA; the plain proxy presents the upstream's own certificate for the host.
  const caKey = newRsaKeyPem();
  const ca = createCaCertificate(caKey, "Keyward bench upstream CA", new Date(), 2);
  const hostKey = newRsaKeyPem();
  const hostCert = issueHostCertificate({ certPem: ca, keyPem: caKey }, hostKey, "localhost", new Date(), 1);
  const upstream = await Child.start("upstream (TLS)", "upstream-process.ts", { env: ctx.childEnv({ BENCH_TLS_CERT: hostCert, BENCH_TLS_KEY: hostKey }) });
  const origin = `https://localhost:${upstream.port}`;
  const plain = await Child.start("plain TLS proxy", "plain-tls-proxy-process.ts", {
    env: ctx.childEnv({ BENCH_TLS_CERT: hostCert, BENCH_TLS_KEY: hostKey, BENCH_UPSTREAM_CA: ca }),
  });
  const broker = await Child.start("keyward", "broker-process.ts", {
    env: ctx.childEnv({
      PORT: "0",
      HOST: "127.0.0.1",
      KEYWARD_FORWARD_PROXY_PORT: "0",
      KEYWARD_DATA_DIR: ctx.dataDir,
      KEYWARD_MASTER_KEY: randomBytes(32).toString("base64"),
      KEYWARD_ADMIN_KEY: ctx.adminKey,
      KEYWARD_ISSUER: "http://keyward.bench",
      LOG_LEVEL: ctx.settings.logLevel,
    }),
  });
  const brokerUrl = `http://127.0.0.1:${broker.port}`;
  const forwardProxyUrl = `http://127.0.0.1:${await broker.call<number>("forwardProxyPort")}`;
  const scenario = await setupScenario(brokerUrl, ctx.adminKey, origin, { agents: ctx.settings.agents, tokensPerAgent: ctx.settings.tokensPerAgent, upstreamCa: ca });
  const keywardCa = await (await fetch(`${brokerUrl}/v1/forward-proxy/ca.pem`)).text();
  const tokens = scenario.tokens;
  const server = ProcessTree.ofEmbeddedServer(ctx.dataDir);
  ctx.log(`keyward on ${brokerUrl}, forward proxy on ${forwardProxyUrl}, ${tokens.length} tokens; upstream ${origin}`);

  const through = (proxy: string, trusted: string, token?: string): Dispatcher =>
    new ProxyAgent({ uri: proxy, ...(token && { token: `Bearer ${token}` }), requestTls: { ca: trusted }, connections: 1 });
  const targets: Target[] = [
    { name: "direct (TLS)", kind: "direct", child: upstream, connect: () => ({ dispatcher: new Client(origin, { connect: { ca } }), origin, prefix: "" }) },
    { name: "plain TLS proxy", kind: "plain", child: plain, connect: () => ({ dispatcher: through(`http://127.0.0.1:${plain.port}`, ca), origin, prefix: "" }) },
    {
      name: "keyward tunnel",
      kind: "keyward",
      child: broker,
      server,
      connect: (worker) => ({ dispatcher: through(forwardProxyUrl, keywardCa, tokens[worker % tokens.length]), origin, prefix: "" }),
    },
    {
      name: "keyward /proxy/",
      kind: "keyward",
      child: broker,
      server,
      connect: (worker) => ({ dispatcher: new Client(brokerUrl), origin: brokerUrl, prefix: PROXY_PREFIX, authorization: `Bearer ${tokens[worker % tokens.length]}` }),
    },
  ];

  ctx.log(`forwarding to an HTTPS upstream: ${ctx.settings.durationS} s per run after ${ctx.settings.warmupS} s warm-up`);
  const rows: ProxyRow[] = [];
  for (const c of ctx.settings.concurrency) {
    for (const target of targets) rows.push(await measure(ctx, target, c, mixedRequest("", tokens)));
  }
  const costs: TunnelResults["costs"] = [];
  for (const row of rows) {
    const plainRow = rows.find((r) => r.c === row.c && r.kind === "plain")!;
    const direct = rows.find((r) => r.c === row.c && r.kind === "direct")!;
    if (row.kind !== "plain") row.vsPlain = row.load.rps / plainRow.load.rps;
    if (row.kind !== "direct") row.vsDirect = row.load.rps / direct.load.rps;
    if (row.kind === "keyward") row.cpuVsPlain = row.load.cpuMsPerRequest! / plainRow.load.cpuMsPerRequest!;
    if (row.target !== "keyward tunnel") continue;
    const route = rows.find((r) => r.c === row.c && r.target === "keyward /proxy/")!;
    costs.push({ c: row.c, rps: row.load.rps / route.load.rps, p50: row.load.p50 / route.load.p50, cpu: row.load.cpuMsPerRequest! / route.load.cpuMsPerRequest! });
  }
  machine.loadavgEnd = loadavg();
  const results: TunnelResults = {
    mode: "tunnel",
    startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
    seconds: (performance.now() - started) / 1000,
    machine,
    settings: { durationS: ctx.settings.durationS, warmupS: ctx.settings.warmupS, concurrency: ctx.settings.concurrency, tokens: tokens.length, logLevel: ctx.settings.logLevel },
    rows,
    costs,
  };
  const markdown = renderTunnel(results);
  process.stdout.write(`\n${markdown}\n`);
  ctx.save(results, markdown);
}

export function renderTunnel(r: TunnelResults): string {
  const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "n/a");
  return [
    `Run of ${r.startedAt} (\`npm run bench -- --tunnel\`, ${r.seconds.toFixed(0)} s; ${JSON.stringify(r.settings)}).`,
    "",
    machineLine(r.machine),
    "",
    "### Forwarding to an HTTPS upstream: 80% allowed / 20% denied; one keep-alive connection (or tunnel) per client",
    "",
    "`÷ plain proxy` is against the plain TLS-terminating proxy; CPU is the serving process's own (Keyward's includes its forward proxy), PostgreSQL's apart.",
    "",
    proxyTable(r.rows),
    "",
    "### Transparent mode's own cost: Keyward's tunnel ÷ Keyward's /proxy/ route",
    "",
    table(["c", "req/s", "p50", "CPU per call"], r.costs.map((k) => [String(k.c), x(k.rps), x(k.p50), x(k.cpu)])),
  ].join("\n");
}
