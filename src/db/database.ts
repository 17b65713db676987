import { PrismaClient } from "@prisma/client";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { startEmbeddedServer } from "./embedded.js";

/** A raw SQL connection, for the migration runner and LISTEN/NOTIFY; everything else goes through Prisma. */
export type SqlSession = {
  exec(sql: string): Promise<void>;
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  release(): void;
};

/** One statement on a session of its own, released whatever happens. */
export async function queryOnce<Row = Record<string, unknown>>(db: Pick<Database, "session">, sql: string, params?: unknown[]): Promise<Row[]> {
  const session = await db.session();
  try {
    return await session.query<Row>(sql, params);
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
    }
  | { kind: "postgres"; url: string };

/** The database a configuration names: DATABASE_URL, or the embedded server on the data dir. */
export const databaseOptionsOf = (config: { databaseUrl?: string; dataDir: string }): DatabaseOptions =>
  config.databaseUrl ? { kind: "postgres", url: config.databaseUrl } : { kind: "embedded", dataDir: config.dataDir };

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.kind === "postgres") return openPostgres(options.url, "postgres");
  const server = await startEmbeddedServer({ dataDir: options.dataDir, onUnexpectedExit: options.onServerExit });
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

/** The database could not be reached at start: main.ts exits with EXIT_DATABASE_UNREACHABLE. */
export class DatabaseUnreachable extends Error {}

/** sysexits' EX_UNAVAILABLE: a supervisor (systemd, Kubernetes, Compose) restarts the broker later. */
export const EXIT_DATABASE_UNREACHABLE = 69;

/**
 * The advisory lock (database-wide) held while a schema is created and while migrations run
 * (src/db/migrate.ts), so that replicas starting together set up a new schema one at a time.
 */
export const SCHEMA_LOCK_KEY = 7_347_291_001;

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

async function openPostgres(url: string, kind: Database["kind"]): Promise<Database> {
  const { connectionString, schema } = parsePostgresUrl(url);
  const pool = new pg.Pool({
    connectionString,
    options: `-c search_path=${schema}`,
    max: 10,
    connectionTimeoutMillis: 5_000,
  });
  // An idle client that loses its server must not crash the process; the next query reports the error.
  pool.on("error", () => {});
  // Nor one that loses it while checked out, before its user can listen: a backend terminated right after
  // it started sends its FATAL in the same packet as its first ReadyForQuery, so the client emits 'error'
  // before pool.connect()'s caller runs. Every client listens from birth; its query in flight fails anyway,
  // and the pool drops it on release. (Seen as uncaught 57P01 errors under pg_terminate_backend.)
  pool.on("connect", (client) => client.on("error", () => {}));
  const client = await pool.connect().catch(async (err: Error & { code?: string }) => {
    await pool.end().catch(() => {});
    throw new DatabaseUnreachable(
      `the database ${describeTarget(connectionString)} is unreachable (${err.code ?? err.message}): ` +
        "exiting at once so that the supervisor can retry (docs/operations.md, \"Starting before the database\")",
    );
  });
  try {
    // Under the lock migrations take: replicas started together on a new schema would otherwise race,
    // and all but one fail on pg_namespace's unique index (IF NOT EXISTS checks before it inserts).
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK_KEY]);
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
        query: async <Row>(sql: string, params?: unknown[]) =>
          (await c.query(sql, params)).rows as Row[],
        release: () => {
          c.off("error", ignore);
          c.release();
        },
      };
    },
    listen: (channel, onNotify, onLost) => listenPostgres(connectionString, schema, channel, onNotify, onLost),
    async notify(channel, payload) {
      await pool.query("SELECT pg_notify($1, $2)", [channel, payload]);
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function listenPostgres(
  connectionString: string,
  schema: string,
  channel: string,
  onNotify: (payload: string) => void,
  onLost: (err: Error) => void,
): Promise<Subscription> {
  assertChannel(channel);
  const client = new pg.Client({
    connectionString,
    // Names the connection in pg_stat_activity, for operators (and the tests that cut it).
    application_name: `keyward-listener:${schema}`,
    connectionTimeoutMillis: 5_000,
    keepAlive: true,
  });
  let over = false;
  const lose = (err: Error) => {
    if (over) return;
    over = true;
    client.end().catch(() => {});
    onLost(err);
  };
  client.on("notification", (message) => {
    if (!over && message.channel === channel) onNotify(message.payload ?? "");
  });
  client.on("error", lose);
  client.on("end", () => lose(new Error("notification connection closed")));
  try {
    await client.connect();
    await client.query(`LISTEN ${channel}`);
  } catch (err) {
    over = true;
    await client.end().catch(() => {});
    throw err;
  }
  return {
    async close() {
      over = true;
      await client.end().catch(() => {});
    },
  };
}
