import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The newest installed PostgreSQL server binaries, or null when there are none. */
export function postgresBin(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

/** A loopback port free now, for a server the test starts later (picked from BELOW_EPHEMERAL). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = BELOW_EPHEMERAL.from + Math.floor(Math.random() * (BELOW_EPHEMERAL.to - BELOW_EPHEMERAL.from));
    if (await canListen(port)) return port;
  }
}

/**
 * Where freePort picks from: below the kernel's ephemeral range (Linux 32768-60999, macOS 49152-65535).
 * A port from listen(0) was handed out again, between its check and its use, to an upstream another
 * test file started with listen(0) at the same time: the broker then never listened, and the test talked
 * to the upstream, which answers 200 to anything (seen once in a full run, in test/faults/process.test.ts).
 * A port out of that range is never handed to anyone who did not ask for it.
 */
const BELOW_EPHEMERAL = { from: 20_000, to: 32_000 };

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A throwaway PostgreSQL cluster of the test's own, on a free loopback port in a temp dir, so a fault
 * test can stop and restart a real server without touching the machine's main cluster. initdb refuses
 * to run as root, so as root the cluster is run by the `postgres` user.
 */
export type TempCluster = {
  url: string;
  port: number;
  start(): void;
  /** `immediate` drops every connection at once, like a crash; `fast` shuts down cleanly. */
  stop(mode?: "fast" | "immediate"): void;
  /** The server's log so far: what it refused shows there (e.g. "sorry, too many clients already"). */
  log(): string;
  destroy(): Promise<void>;
};

export async function startTempCluster(settings: { maxConnections?: number } = {}): Promise<TempCluster> {
  const bin = postgresBin();
  if (!bin) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
  const dir = mkdtempSync(join(tmpdir(), "keyward-pg-"));
  const dataDir = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o700);
  }
  const run = (cmd: string, args: string[]) => {
    const res = asRoot
      ? spawnSync("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args], { encoding: "utf8" })
      : spawnSync(join(bin, cmd), args, { encoding: "utf8" });
    if (res.status !== 0) throw new Error(`${cmd} failed: ${res.stderr || res.stdout}`);
  };
  const port = await freePort();
  run("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=${settings.maxConnections ?? 50}`;
  const cluster: TempCluster = {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => run("pg_ctl", ["-D", dataDir, "-o", options, "-l", join(dir, "log"), "-w", "start"]),
    stop: (mode = "immediate") => run("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "stop"]),
    log: () => readFileSync(join(dir, "log"), "utf8"),
    async destroy() {
      try {
        cluster.stop("immediate");
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cluster.start();
  // Prove it answers before handing it out.
  const client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  await client.end();
  return cluster;
}
