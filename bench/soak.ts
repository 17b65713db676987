/**
 * `npm run bench -- --soak [--soak-seconds N]`: one broker under mixed traffic at c=64 for 10 minutes (or
 * N seconds) while, every second, a token is issued, the oldest in use is revoked and a grant is edited.
 * Sampled over time: the broker's RSS, open file descriptors, event-loop delay (its /metrics) and
 * connections to PostgreSQL; at the end, audit events counted against the calls the load generator saw.
 * Nothing may grow without bound: the report compares the last quarter with the second.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import pg from "pg";
import type { Child } from "./child.js";
import { embeddedUrl } from "../src/db/embedded.js";
import { median, type SoakResults } from "./report.js";
import { runLoad } from "./load.js";
import { basicAuth, mixedRequest, PROXY_PREFIX, type Scenario } from "./scenario.js";

export type SoakDeps = {
  seconds: number;
  connections: number;
  adminKey: string;
  log: (line: string) => void;
  /** A running broker on a fresh store, with the bench scenario set up on it. */
  broker: { child: Child; url: string; scenario: Scenario; schema: string | undefined; dataDir: string };
  databaseUrl: string | undefined;
};

type Sample = SoakResults["samples"][number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;

/** Open descriptors of a process, from /proc. */
function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The process's established TCP connections to port 5432, matched through its socket inodes in /proc. */
function postgresConnections(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let count = 0;
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const remotePort = parseInt(cols[2]!.split(":")[1]!, 16);
      if (remotePort === 5432 && cols[3] === "01" && inodes.has(cols[9]!)) count++;
    }
  }
  return count;
}

/** prom-client's default event-loop delay gauges from the broker's /metrics. */
async function eventLoopDelay(url: string, adminKey: string): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${adminKey}` } }).then((r) => r.text());
  const gauge = (name: string) => Number(new RegExp(`^${name} ([0-9.eE+-]+)$`, "m").exec(text)?.[1] ?? NaN) * 1000;
  return { p99Ms: gauge("keyward_nodejs_eventloop_lag_p99_seconds"), maxMs: gauge("keyward_nodejs_eventloop_lag_max_seconds") };
}

async function api(url: string, adminKey: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

export async function runSoak(deps: SoakDeps): Promise<Pick<SoakResults, "passed" | "summary" | "samples">> {
  const { broker, adminKey } = deps;
  const { scenario } = broker;
  const tokens = scenario.tokens; // rotated in place: the load reads it on every request
  const pid = broker.child.pid;
  const samples: Sample[] = [];
  const churn = { issued: 0, revoked: 0, grantEdits: 0, failures: [] as string[] };
  const { grants } = (await api(broker.url, adminKey, "GET", "/v1/grants")).body as { grants: { id: string; name: string }[] };
  const editable = grants.find((g) => g.name === scenario.agents[0]!.grant);
  if (!editable) throw new Error("soak: the scenario's first grant was not found");

  let running = true;
  const started = Date.now();
  const sampleEveryMs = Math.max(1_000, Math.round((deps.seconds * 1000) / 60));

  // Once a second, on the clock: issue a token into the pool, revoke the one it replaces, edit a grant.
  // A tick does not wait for the one before: run one after another, slow answers under load stretched
  // the churn to one tick per ~5 s (121 in a 600 s run). Ticks overlap instead, up to a bound below the
  // pool's size so that no two rotate the same slot; a tick that would exceed it is skipped, a failure.
  const maxTicksInFlight = Math.min(8, tokens.length);
  const inFlight = new Set<Promise<void>>();
  const tickMs: number[] = [];
  const churnTick = async (tick: number) => {
    const tickStarted = performance.now();
    try {
      const agent = scenario.agents[tick % scenario.agents.length]!;
      const issued = await fetch(`${broker.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: basicAuth(agent), "content-type": "application/json" },
        body: JSON.stringify({ grant: agent.grant }),
      });
      const issuedBody = (await issued.json()) as { access_token?: string };
      if (issued.status !== 200 || !issuedBody.access_token) throw new Error(`token issuance ${issued.status}`);
      churn.issued++;
      const slot = tick % tokens.length;
      const old = tokens[slot]!;
      tokens[slot] = issuedBody.access_token;
      const revoked = await api(broker.url, adminKey, "POST", "/v1/revocations", { jti: jtiOf(old), reason: "soak" });
      if (revoked.status !== 201) throw new Error(`revocation ${revoked.status}`);
      churn.revoked++;
      const deny = tick % 2 === 0 ? [{ method: "DELETE" }, { method: "GET", path: "/v1/items/7" }] : [{ method: "DELETE" }];
      const edited = await api(broker.url, adminKey, "PATCH", `/v1/grants/${editable.id}`, { deny });
      if (edited.status !== 200) throw new Error(`grant edit ${edited.status}`);
      churn.grantEdits++;
    } catch (err) {
      churn.failures.push(`${Math.round((Date.now() - started) / 1000)} s: ${err instanceof Error ? err.message : String(err)}`);
    }
    tickMs.push(performance.now() - tickStarted);
  };
  let ticks = 0;
  const churner = (async () => {
    for (; running; ticks++) {
      if (inFlight.size >= maxTicksInFlight) {
        churn.failures.push(`${Math.round((Date.now() - started) / 1000)} s: tick skipped, ${inFlight.size} still in flight`);
      } else {
        const done = churnTick(ticks).finally(() => inFlight.delete(done));
        inFlight.add(done);
      }
      await sleep(Math.max(0, started + (ticks + 1) * 1_000 - Date.now()));
    }
    await Promise.all(inFlight);
  })();

  const sampler = (async () => {
    while (running) {
      const loop = await eventLoopDelay(broker.url, adminKey).catch(() => ({ p99Ms: NaN, maxMs: NaN }));
      const sample: Sample = {
        t: (Date.now() - started) / 1000,
        rssMiB: broker.child.rss() / 2 ** 20,
        fds: openFds(pid),
        loopP99Ms: loop.p99Ms,
        loopMaxMs: loop.maxMs,
        dbConnections: deps.databaseUrl ? postgresConnections(pid) : null,
      };
      samples.push(sample);
      deps.log(
        `soak ${sample.t.toFixed(0).padStart(4)} s: rss ${sample.rssMiB.toFixed(0)} MiB, fds ${sample.fds}, ` +
          `event-loop delay p99 ${sample.loopP99Ms.toFixed(1)} ms (max ${sample.loopMaxMs.toFixed(1)}), ` +
          `db connections ${sample.dbConnections ?? "n/a (embedded)"}`,
      );
      await sleep(sampleEveryMs);
    }
  })();

  const mixed = mixedRequest(PROXY_PREFIX, tokens);
  let sent = 0;
  const load = await runLoad({
    baseUrl: broker.url,
    connections: deps.connections,
    seconds: deps.seconds,
    next: (n) => {
      sent++;
      return mixed(n);
    },
  });
  running = false;
  await Promise.all([churner, sampler]);

  // Every proxied call the load generator saw answered is one `proxy` audit event (allowed or denied).
  const callsSeen = Object.values(load.statuses).reduce((a, b) => a + b, 0);
  // The broker ships its spooled events behind the calls (src/audit/log.ts): up to its back-pressure mark
  // may still be on their way. Counted until they are all in, or the count stops moving.
  let audited = await countProxyEvents(deps);
  for (let stillFor = 0; audited < callsSeen && stillFor < 5; ) {
    await sleep(1_000);
    const now = await countProxyEvents(deps);
    stillFor = now === audited ? stillFor + 1 : 0;
    audited = now;
  }

  const quarter = (q: number) => samples.filter((s) => s.t >= (q * deps.seconds) / 4 && s.t < ((q + 1) * deps.seconds) / 4);
  const mean = (xs: Sample[], f: (s: Sample) => number) => xs.reduce((a, s) => a + f(s), 0) / Math.max(1, xs.length);
  const [second, last] = [quarter(1), quarter(3)];
  const growth = (name: string, f: (s: Sample) => number, allowed: number) => {
    const before = mean(second, f);
    const after = mean(last, f);
    const ok = !(after > before * allowed + 1);
    return { name, before, after, ok };
  };
  const checks = [
    growth("RSS (MiB)", (s) => s.rssMiB, 1.25),
    growth("open fds", (s) => s.fds, 1.25),
    ...(deps.databaseUrl ? [growth("db connections", (s) => s.dbConnections ?? 0, 1)] : []),
  ];

  // The summary is printed and kept for bench/RESULTS.md.
  const summary: string[] = [];
  const log = (line: string) => {
    summary.push(line);
    deps.log(line);
  };
  deps.log("");
  log(`soak: ${deps.seconds} s at c=${deps.connections}: ${callsSeen} proxied calls answered (${Math.round(load.rps)} /s), statuses ${JSON.stringify(load.statuses)}, errors ${load.errors}, timeouts ${load.timeouts}`);
  log(
    `soak: churn ${ticks} ticks, one a second: ${churn.issued} tokens issued, ${churn.revoked} revoked, ${churn.grantEdits} grant edits ` +
      `(a tick took median ${median(tickMs).toFixed(0)} ms, max ${Math.max(...tickMs).toFixed(0)} ms); ` +
      `${churn.failures.length} failures${churn.failures.length ? `: ${churn.failures.slice(0, 5).join("; ")}` : ""}`,
  );
  log(`soak: latency p50 ${load.p50.toFixed(1)} ms, p99 ${load.p99.toFixed(1)} ms, max ${load.max.toFixed(0)} ms`);
  for (const c of checks) log(`soak: ${c.name}: second quarter ${c.before.toFixed(1)}, last quarter ${c.after.toFixed(1)} ${c.ok ? "(flat)" : "(GROWING)"}`);
  log(`soak: event-loop delay p99 over the run: median ${median(samples.map((s) => s.loopP99Ms)).toFixed(1)} ms, worst ${Math.max(...samples.map((s) => s.loopP99Ms)).toFixed(1)} ms`);
  // Calls still in flight when the load generator stopped were decided (and audited) but never seen
  // answered: at most one per connection, the difference between calls sent and calls seen.
  const inFlightAtStop = sent - callsSeen;
  const auditOk = audited >= callsSeen && audited <= sent;
  log(
      `soak: audit: ${audited} proxy events for ${callsSeen} calls seen answered and ${inFlightAtStop} in flight at the stop ` +
        `${audited === callsSeen ? "(equal)" : auditOk ? `(equal but for ${audited - callsSeen} of those in flight)` : "(MISMATCH)"}`,
    );
  const passed = auditOk && checks.every((c) => c.ok) && churn.failures.length === 0 && load.errors === 0;
  return { passed, summary, samples };
}

/**
 * `proxy` events (one per proxied call, allowed or denied) in the broker's database: its schema on
 * DATABASE_URL, or the embedded server's public schema through its socket (the broker still runs it).
 */
async function countProxyEvents(deps: SoakDeps): Promise<number> {
  const connectionString = deps.databaseUrl ?? embeddedUrl(deps.broker.dataDir);
  const table = deps.databaseUrl ? `"${deps.broker.schema}"."AuditEvent"` : `"AuditEvent"`;
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE kind = 'proxy'`);
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}
