import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "./broker.js";
import { freePort } from "./pg-cluster.js";
import { waitFor } from "./wait.js";

/**
 * What `npm start` runs: src/main.ts compiled (`npm run build:server`; the suite's global set-up,
 * test/setup/build.ts, brings build/ up to date with src/ first). Started with node itself, as `npm start`
 * does, so that the broker gets the signals.
 */
export const MAIN = "build/src/main.js";

/** MAIN in a process group of its own, so that a SIGKILL sent to the group reaches anything it started. */
export function spawnMain(env: NodeJS.ProcessEnv, stdio: StdioOptions): ChildProcess {
  return spawn(process.execPath, [MAIN], { env, stdio, detached: true });
}

export type BrokerProcess = {
  url: string;
  /** The broker's own process (for a fault set on it from outside, such as a resource limit). */
  pid: number;
  /** SIGTERM, then its exit code (null if a signal ended it). */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, with no chance to clean up. */
  kill(): Promise<void>;
};

/**
 * A broker in a process of its own, started as `npm start` does (MAIN), on a test store. Where a
 * test needs replicas to use separate cores, as real replicas do; for everything else startBroker is
 * simpler.
 */
export async function startBrokerProcess(
  store: Store,
  env: Record<string, string> = {},
  options: { startTimeoutMs?: number } = {},
): Promise<BrokerProcess> {
  // A given PORT (a replica restarted where its load balancer expects it) is the one to wait on.
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const child = spawnMain(
    {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      PORT: String(port),
      HOST: "127.0.0.1",
      KEYWARD_DATA_DIR: store.dataDir,
      KEYWARD_MASTER_KEY: store.masterKey,
      KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY,
      KEYWARD_ISSUER: "http://keyward.test",
      LOG_LEVEL: "warn",
      ...(store.databaseUrl && { DATABASE_URL: store.databaseUrl }),
      ...env,
    },
    ["ignore", "ignore", "pipe"],
  );
  let stderr = "";
  child.stderr!.on("data", (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`broker process exited: ${stderr}`);
        return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      },
      options.startTimeoutMs ?? 60_000,
      () => `the broker process to start: ${stderr}`,
      100,
    );
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    url,
    pid: child.pid!,
    stop() {
      child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      process.kill(-child.pid!, "SIGKILL");
      await exited;
    },
  };
}

/**
 * A broker process on a store `setUp` first filled through an in-process broker (with the scenario
 * helpers), which it closes before the process starts: what `setUp` returns comes back beside it.
 */
export async function startBrokerProcessAfter<T>(
  store: Store,
  setUp: (broker: TestBroker) => Promise<T>,
  env: Record<string, string> = {},
): Promise<{ broker: BrokerProcess; made: T }> {
  const setup = await startBroker(store);
  let made: T;
  try {
    made = await setUp(setup);
  } finally {
    await setup.close();
  }
  return { broker: await startBrokerProcess(store, env), made };
}

/**
 * Whether the broker answers /healthz within `ms`. It does not while its event loop is blocked: what the
 * tests of agent input built to be slow (REQ-32, REQ-34, REQ-39) look for, with the broker in its own
 * process so that a regression fails them on a timeout rather than stalling the test runner.
 */
export const answersWithin = (broker: Pick<BrokerProcess, "url">, ms: number): Promise<boolean> =>
  fetch(`${broker.url}/healthz`, { signal: AbortSignal.timeout(ms) }).then((r) => r.ok, () => false);
