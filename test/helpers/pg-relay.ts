import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { newStore, startBroker, type Store, type TestBroker } from "./broker.js";
import { createUpstream } from "./scenario.js";
import { startUpstream } from "./upstream.js";

export type PgRelay = {
  /** The relay's address: a database URL pointing here reaches `target` through it. */
  url: string;
  /** How long the server's bytes are held back before the client gets them (order kept). */
  delayMs: number;
  /**
   * From now on, the connections named `applicationName` open at this moment carry nothing either way,
   * yet stay open: a connection whose server (or the path to it) went silent without a reset, as after a
   * failover or a partition. Connections opened later are relayed as usual.
   */
  silence(applicationName: string): number;
  /**
   * A database that is down (true) or back (false): while down, the relay cuts the connections it has and
   * closes each new one at once.
   */
  down(isDown: boolean): void;
  close(): Promise<void>;
};

/**
 * A TCP relay in front of PostgreSQL, for faults a real server does not make on demand. The server may be
 * on TCP (the machine's, DATABASE_URL) or on a Unix socket (the suite's embedded one: `?host=<dir>`).
 */
export async function startPgRelay(databaseUrl: string): Promise<PgRelay> {
  const target = new URL(databaseUrl);
  const socketDir = target.searchParams.get("host");
  const connectToServer = () =>
    socketDir ? connect(join(socketDir, `.s.PGSQL.${target.port || 5432}`)) : connect(Number(target.port || 5432), target.hostname);
  const connections = new Set<{ client: Socket; server: Socket; startup: string; silent: boolean }>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = connectToServer();
    const c = { client, server: upstream, startup: "", silent: false };
    connections.add(c);
    let lastDue = 0;
    client.on("data", (chunk) => {
      if (c.startup.length < 4096) c.startup += chunk.toString("latin1");
      if (!c.silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (c.silent) return;
      const due = Math.max(Date.now() + relay.delayMs, lastDue);
      lastDue = due;
      setTimeout(() => !c.silent && client.writable && client.write(chunk), due - Date.now());
    });
    const end = () => {
      connections.delete(c);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", () => (c.silent ? undefined : setTimeout(end, relay.delayMs)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(databaseUrl);
  url.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  url.searchParams.delete("host");
  const relay: PgRelay = {
    url: url.toString(),
    delayMs: 0,
    silence(applicationName) {
      let count = 0;
      for (const c of connections) {
        if (!c.startup.includes(applicationName)) continue;
        c.silent = true;
        count++;
      }
      return count;
    },
    down(isDown) {
      refusing = isDown;
      if (isDown) for (const c of connections) (c.client.destroy(), c.server.destroy());
    },
    close: () => {
      for (const c of connections) (c.client.destroy(), c.server.destroy());
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}

export type ReplicasBehindRelay = { store: Store; upstream: Awaited<ReturnType<typeof startUpstream>>; a: TestBroker; b: TestBroker; relay: PgRelay; close(): Promise<void> };

/**
 * Two replicas on one fresh store, B's database traffic through a relay (so a test can slow or silence
 * it), and an upstream `api` in `staging` created through A; closed together.
 */
export async function startReplicasBehindRelay(options: { upstreamSecret: string; envB?: Record<string, string> }): Promise<ReplicasBehindRelay> {
  const upstream = await startUpstream();
  const store = newStore();
  const a = await startBroker(store);
  const relay = await startPgRelay(store.databaseUrl);
  const b = await startBroker(store, { DATABASE_URL: relay.url, ...options.envB });
  await createUpstream(a, { name: "api", baseUrl: upstream.url, environment: "staging", secret: options.upstreamSecret });
  return {
    store,
    upstream,
    a,
    b,
    relay,
    async close() {
      await a.close();
      await b.close();
      await relay.close();
      await upstream.close();
      await store.drop();
    },
  };
}
