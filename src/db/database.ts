import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PrismaClient } from "@prisma/client";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import pg from "pg";
import type { SqlDriverAdapterFactory } from "@prisma/driver-adapter-utils";

/** A raw SQL connection, for the migration runner and LISTEN/NOTIFY; everything else goes through Prisma. */
export type SqlSession = {
  exec(sql: string): Promise<void>;
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  release(): void;
};

export type Database = {
  kind: "pglite" | "postgres";
  prisma: PrismaClient;
  /** A session that has the connection to itself until released (PGlite has only one). */
  session(): Promise<SqlSession>;
  close(): Promise<void>;
};

export type DatabaseOptions =
  | { kind: "pglite"; dataDir: string | undefined /* undefined = in memory */ }
  | { kind: "postgres"; url: string };

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.kind === "pglite" ? openPglite(options.dataDir) : openPostgres(options.url);
}

async function openPglite(dataDir: string | undefined): Promise<Database> {
  let pgDir: string | undefined;
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    pgDir = join(dataDir, "pgdata");
  }
  const pglite = await PGlite.create(pgDir);
  // pglite-prisma-adapter 0.6 is typed against an older @prisma/driver-adapter-utils whose ArgType
  // differs; the adapter never reads argTypes, so the two are compatible at run time.
  const adapter = new PrismaPGlite(pglite) as unknown as SqlDriverAdapterFactory;
  const prisma = new PrismaClient({ adapter });
  return {
    kind: "pglite",
    prisma,
    async session() {
      return {
        exec: async (sql) => void (await pglite.exec(sql)),
        query: async <Row>(sql: string, params?: unknown[]) =>
          (await pglite.query<Row>(sql, params)).rows,
        release: () => {},
      };
    },
    async close() {
      await prisma.$disconnect();
      // An unclosed PGlite can leave its data dir unusable.
      await pglite.close();
    },
  };
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

async function openPostgres(url: string): Promise<Database> {
  const { connectionString, schema } = parsePostgresUrl(url);
  const pool = new pg.Pool({
    connectionString,
    options: `-c search_path=${schema}`,
    max: 10,
    connectionTimeoutMillis: 5_000,
  });
  // An idle client that loses its server must not crash the process; the next query reports the error.
  pool.on("error", () => {});
  const client = await pool.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } finally {
    client.release();
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
  return {
    kind: "postgres",
    prisma,
    async session() {
      const c = await pool.connect();
      return {
        exec: async (sql) => void (await c.query(sql)),
        query: async <Row>(sql: string, params?: unknown[]) =>
          (await c.query(sql, params)).rows as Row[],
        release: () => c.release(),
      };
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
