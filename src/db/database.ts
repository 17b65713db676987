import { PrismaClient } from "@prisma/client";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { startEmbeddedServer } from "./embedded.js";
import { DatabaseUnreachable } from "./errors.js";
import { ADVISORY_LOCKS } from "./locks.js";
import { jittered } from "../util/jitter.js";

/** A raw SQL connection, for the migration runner and LISTEN/NOTIFY; everything else goes through Prisma. */
export type SqlSession = {
  exec(sql: string): Promise<void>;
  /**
   * `name`, for a statement run for every few calls: prepared once per connection under that name, so the
   * server parses and plans it once, not on every run (for the audit pipeline's statements of a few
   * events, parsing and planning were ~16% of PostgreSQL's CPU, measured with perf).
   */
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[], name?: string): Promise<Row[]>;
  release(): void;
};

/** One statement on a session of its own, released whatever happens. */
export async function queryOnce<Row = Record<string, unknown>>(
  db: Pick<Database, "session">,
  sql: string,
  params?: unknown[],
  name?: string,
): Promise<Row[]> {
  const session = await db.session();
  try {
    return await session.query<Row>(sql, params, name);
  } finally {
    session.release();
  }
}

/** A LISTEN subscription; closing it ends its connection. */
export type Subscription = { close(): Promise<void> };

export type Database = {
  /** "embedded": the private server of src/db/embedded.ts; "postgres": DATABASE_URL. Same SQL either way. */
  kind: "embedded" | "postgres";
  /** The schema Keyward's tables live in ("public" unless DATABASE_URL names one). */
  schema: string;
  prisma: PrismaClient;
  /** A session that has the connection to itself until released. */
  session(): Promise<SqlSession>;
  /**
   * Delivers every NOTIFY on `channel` to `onNotify`, in commit order. This holds a connection of its
   * own (never one of the pool's, which come and go); if that connection dies, `onLost` is called once
   * and the subscription is over: listen again to recover.
   */
  listen(channel: string, onNotify: (payload: string) => void, onLost: (err: Error) => void): Promise<Subscription>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
};

/** Channel names are written into LISTEN unquoted, so only plain identifiers. */
const assertChannel = (channel: string) => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`invalid notification channel ${channel}`);
};

export type DatabaseOptions =
  | {
      kind: "embedded";
      /** KEYWARD_DATA_DIR: the embedded server's cluster and socket live in it (src/db/embedded.ts). */
      dataDir: string;
      /** The embedded server died under the broker; every query fails from then on (fail closed). */
      onServerExit?: (description: string) => void;
      /** A data dir without a database is refused rather than given a new one (EmbeddedOptions.mustExist). */
      mustExist?: boolean;
      /** Stops the server at once when aborted (EmbeddedOptions.stopOn). */
      stopOn?: AbortSignal;
    }
  | { kind: "postgres"; url: string };

/** The database a configuration names: DATABASE_URL, or the embedded server on the data dir. */
export const databaseOptionsOf = (config: { databaseUrl?: string; dataDir: string }): DatabaseOptions =>
  config.databaseUrl ? { kind: "postgres", url: config.databaseUrl } : { kind: "embedded", dataDir: config.dataDir };

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.kind === "postgres") return openPostgres(options.url, "postgres");
  const server = await startEmbeddedServer({
    dataDir: options.dataDir,
    onUnexpectedExit: options.onServerExit,
    mustExist: options.mustExist,
    stopOn: options.stopOn,
  });
  try {
    const db = await openPostgres(server.url, "embedded");
    return {
      ...db,
      async close() {
        try {
          await db.close();
        } finally {
          await server.stop();
        }
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** No database connection within the connect timeout: like any outage, a 503 (src/http/error-handler.ts), not a 500. */
export class DatabaseConnectTimeout extends Error {}

/** sysexits' EX_UNAVAILABLE: a supervisor (systemd, Kubernetes, Compose) restarts the broker later. */
export const EXIT_DATABASE_UNREACHABLE = 69;

/** Host, port and database of a connection string, never its credentials. */
function describeTarget(connectionString: string): string {
  const url = new URL(connectionString);
  const host = url.searchParams.get("host") ?? `${url.hostname}:${url.port || 5432}`;
  return `${host}${url.pathname}`;
}

/**
 * A `schema` query parameter (as Prisma's own URLs use) selects a Postgres schema; tests use it to give
 * every run its own schema in one database.
 */
function parsePostgresUrl(url: string): { connectionString: string; schema: string } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema") ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error("DATABASE_URL: invalid schema name");
  parsed.searchParams.delete("schema");
  return { connectionString: parsed.toString(), schema };
}

/** Connections a broker's pool opens at most, and how long a query waits for one. */
const POOL_MAX = 10;
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * An unused connection is closed after this; after the shorter one while the server is crowded (full,
 * or every client reconnecting to it after an outage, for the window after), to give it back.
 */
const IDLE_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_WHILE_CROWDED_MS = 500;
const CROWDED_AFTER_OUTAGE_MS = 30_000;
/** After the server refused the pool a connection, it tries to grow again after this (doubling, to the cap). */
const REGROW_FIRST_MS = 1_000;
const REGROW_CAP_MS = 30_000;

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

const serverFull = (err: unknown) => (err as { code?: unknown }).code === "53300"; // too_many_connections
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A pool whose ceiling is what the server lets it have. When PostgreSQL refuses a new connection
 * because it is at max_connections (other clients, or a database coming back with everyone reconnecting
 * at once), the query that asked for it is not failed: the pool holds at the connections it has, the
 * query waits for one of them, connections left unused are given back to the server quickly, and growth
 * is tried again after a backoff with jitter that doubles while the server stays full. A pool with no
 * connection at all retries with the same backoff until the connect timeout. So a broker near
 * max_connections serves, more slowly, instead of answering 503 to whatever needed one connection more
 * (which `/readyz`, needing only one, would not see), and it does not storm the server with attempts.
 * After the database was lost, unused connections are given back quickly too for a while: every client
 * is reconnecting, and another replica's notification connection may be waiting for a slot.
 */
class ServerBoundedPool extends pg.Pool {
  readonly #configuredMax: number;
  #refusals = 0;
  #regrow: NodeJS.Timeout | undefined;
  #crowdedUntil = 0;
  #uncrowded: NodeJS.Timeout | undefined;

  constructor(config: pg.PoolConfig & { max: number }) {
    super({ ...config, idleTimeoutMillis: IDLE_TIMEOUT_MS });
    this.#configuredMax = config.max;
    // An idle connection lost its server (which, heard, does not crash the process): the database went away.
    this.on("error", () => this.#crowdedFor(CROWDED_AFTER_OUTAGE_MS));
    // A connection opened at the full ceiling: the server has room again.
    this.on("connect", () => {
      if (this.options.max === this.#configuredMax) this.#refusals = 0;
    });
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    if (callback) return this.#connectWithinServerLimit(callback, Date.now() + CONNECT_TIMEOUT_MS, 0);
    return new Promise((resolve, reject) =>
      this.#connectWithinServerLimit((err, client) => (err ? reject(err) : resolve(client!)), Date.now() + CONNECT_TIMEOUT_MS, 0),
    );
  }

  /**
   * pg-pool's connect, in its callback form, so that a client is handed over (and pg-pool's query() sends
   * on it) in the same tick it is taken, as without this class.
   */
  #connectWithinServerLimit(callback: ConnectCallback, deadline: number, attempt: number): void {
    super.connect((err, client, done) => {
      if (err && serverFull(err) && !this.ended && Date.now() < deadline) {
        this.#holdAt(Math.max(1, this.totalCount));
        // Held at its connections, the pool hands over the next one released; with none, try again later.
        // Not unref'd: at start nothing else holds the event loop (no server listens yet), and a broker
        // waiting for room on a full server would otherwise end silently with status 0 instead of 69.
        const wait = this.totalCount === 0 ? Math.min(jittered(50 * 2 ** attempt), deadline - Date.now()) : 0;
        setTimeout(() => this.#connectWithinServerLimit(callback, deadline, attempt + 1), wait);
        return;
      }
      if (err && !serverFull(err)) this.#crowdedFor(CROWDED_AFTER_OUTAGE_MS);
      // pg-pool's two timeouts: waiting for a connection of the pool's, and opening a new one.
      if (err && /^timeout exceeded when trying to connect$|^Connection terminated due to connection timeout$/.test(err.message)) {
        return callback(new DatabaseConnectTimeout(`no database connection within ${CONNECT_TIMEOUT_MS} ms`, { cause: err }), undefined, done);
      }
      callback(err, client, done);
    });
  }

  /**
   * Closes one of its connections (the next one free) and holds one lower, so that another connection
   * of this broker's, which it cannot do without, gets the slot on a full server. False if it has none.
   */
  async giveBackOne(): Promise<boolean> {
    if (this.totalCount === 0) return false;
    // Never below one: a pool held at none would leave its waiting queries queued until they time out.
    this.#holdAt(Math.max(1, this.totalCount - 1));
    const client = await super.connect();
    await new Promise<void>((resolve) => {
      client.once("end", resolve);
      client.release(true);
    });
    return true;
  }

  #holdAt(ceiling: number): void {
    this.options.max = ceiling;
    const regrowMs = jittered(Math.min(REGROW_CAP_MS, REGROW_FIRST_MS * 2 ** this.#refusals++));
    this.#crowdedFor(regrowMs);
    clearTimeout(this.#regrow);
    this.#regrow = setTimeout(() => (this.options.max = this.#configuredMax), regrowMs);
    this.#regrow.unref();
  }

  /** For the next `ms` (or longer, if already so), connections left unused are closed after the short timeout. */
  #crowdedFor(ms: number): void {
    const until = Date.now() + ms;
    if (until <= this.#crowdedUntil) return;
    this.#crowdedUntil = until;
    this.options.idleTimeoutMillis = IDLE_TIMEOUT_WHILE_CROWDED_MS;
    clearTimeout(this.#uncrowded);
    this.#uncrowded = setTimeout(() => (this.options.idleTimeoutMillis = IDLE_TIMEOUT_MS), ms);
    this.#uncrowded.unref();
  }
}

async function openPostgres(url: string, kind: Database["kind"]): Promise<Database> {
  const { connectionString, schema } = parsePostgresUrl(url);
  const pool = new ServerBoundedPool({
    connectionString,
    options: `-c search_path=${schema}`,
    max: POOL_MAX,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  // A client that loses its server while checked out, before its user can listen, must not crash the process
  // (an idle one is heard by the pool itself): a backend terminated right after
  // it started sends its FATAL in the same packet as its first ReadyForQuery, so the client emits 'error'
  // before pool.connect()'s caller runs. Every client listens from birth; its query in flight fails anyway,
  // and the pool drops it on release. (Seen as uncaught 57P01 errors under pg_terminate_backend.)
  pool.on("connect", (client) => client.on("error", () => {}));
  const client = await pool.connect().catch(async (err: Error & { code?: string }) => {
    await pool.end().catch(() => {});
    const target = describeTarget(connectionString);
    // A full server answered: "unreachable" would send the operator looking at the network.
    const what = serverFull(err)
      ? `${target} had no connection free within ${CONNECT_TIMEOUT_MS / 1000} s (53300: max_connections reached)`
      : `${target} is unreachable (${err.code ?? err.message})`;
    throw new DatabaseUnreachable(
      `the database ${what}: exiting at once so that the supervisor can retry (docs/operations.md, "Starting before the database")`,
    );
  });
  try {
    // Under the lock migrations take: replicas started together on a new schema would otherwise race,
    // and all but one fail on pg_namespace's unique index (IF NOT EXISTS checks before it inserts).
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query("COMMIT");
  } catch (err) {
    // Destroyed rather than returned mid-transaction (which also drops the lock), and nothing left open.
    client.release(err as Error);
    await pool.end().catch(() => {});
    throw err;
  }
  client.release();
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
  return {
    kind,
    schema,
    prisma,
    async session() {
      const c = await pool.connect();
      // A checked-out client whose server goes away emits 'error', which unheard would end the process;
      // the query in flight fails with it anyway, and the pool drops the dead client on release.
      const ignore = () => {};
      c.on("error", ignore);
      return {
        exec: async (sql) => void (await c.query(sql)),
        // Unnamed as before (pg copies a config object on every query; a string it does not).
        query: async <Row>(sql: string, params?: unknown[], name?: string) =>
          (await (name === undefined ? c.query(sql, params) : c.query({ name, text: sql, values: params }))).rows as Row[],
        release: () => {
          c.off("error", ignore);
          c.release();
        },
      };
    },
    listen: (channel, onNotify, onLost) => listenPostgres(connectionString, schema, channel, onNotify, onLost, pool),
    async notify(channel, payload) {
      await pool.query("SELECT pg_notify($1, $2)", [channel, payload]);
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/** Tries at opening the notification connection on a full server, each after the pool gave one back. */
const LISTEN_ATTEMPTS_ON_FULL_SERVER = 3;

/**
 * The notification connection comes before the pool's: without it the revocation state cannot be proven
 * current and nothing is served, while the pool can serve with one connection fewer. So on a server at
 * max_connections the pool gives one of its own back for it.
 */
async function listenPostgres(
  connectionString: string,
  schema: string,
  channel: string,
  onNotify: (payload: string) => void,
  onLost: (err: Error) => void,
  pool: ServerBoundedPool,
): Promise<Subscription> {
  assertChannel(channel);
  for (let attempt = 1; ; attempt++) {
    try {
      return await subscribe(connectionString, schema, channel, onNotify, onLost);
    } catch (err) {
      if (!serverFull(err) || attempt >= LISTEN_ATTEMPTS_ON_FULL_SERVER || !(await pool.giveBackOne())) throw err;
      // The server frees a slot once the closed connection's backend has exited.
      await sleep(20);
    }
  }
}

async function subscribe(
  connectionString: string,
  schema: string,
  channel: string,
  onNotify: (payload: string) => void,
  onLost: (err: Error) => void,
): Promise<Subscription> {
  const client = new pg.Client({
    connectionString,
    // Names the connection in pg_stat_activity, for operators (and the tests that cut it).
    application_name: `keyward-listener:${schema}`,
    connectionTimeoutMillis: 5_000,
    keepAlive: true,
  });
  let over = false;
  // A loss is reported only once the subscription was handed over: before that, the caller hears it as
  // the rejection (pg can emit 'end' before connect() rejects, and a caller told twice recovers twice).
  let handedOver = false;
  const lose = (err: Error) => {
    if (over) return;
    over = true;
    client.end().catch(() => {});
    if (handedOver) onLost(err);
  };
  client.on("notification", (message) => {
    if (!over && message.channel === channel) onNotify(message.payload ?? "");
  });
  client.on("error", lose);
  client.on("end", () => lose(new Error("notification connection closed")));
  try {
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    if (over) throw new Error("notification connection closed while subscribing");
  } catch (err) {
    over = true;
    await client.end().catch(() => {});
    throw err;
  }
  handedOver = true;
  return {
    async close() {
      over = true;
      await client.end().catch(() => {});
    },
  };
}
