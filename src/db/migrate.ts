import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { projectPath } from "../util/project-root.js";
import { queryOnce, type Database, type SqlSession } from "./database.js";
import { ADVISORY_LOCKS } from "./locks.js";

const MIGRATIONS_DIR = projectPath("prisma", "migrations");

type Migration = { name: string; sql: string; checksum: string };

function readMigrations(dir: string): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

/** The names of the committed migrations, in the order they apply. */
export const migrationNames = (dir = MIGRATIONS_DIR) => readMigrations(dir).map((m) => m.name);

/**
 * Whether a Keyward ever migrated this database (schema): none has where a command that works on the
 * broker's database (a backup, a key rotation) was pointed at the wrong one.
 */
export async function hasKeywardDatabase(db: Database): Promise<boolean> {
  const [row] = await queryOnce<{ found: boolean }>(db, `SELECT to_regclass($1) IS NOT NULL AS found`, [`"${db.schema}"."_keyward_migrations"`]);
  return row?.found === true;
}

const MIGRATIONS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS "_keyward_migrations" (
  name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`;

/** The migrations (through `through`, if given) not yet applied; refuses if an applied one's file has changed since. */
async function pendingMigrations(session: SqlSession, options: { dir?: string; through?: string }): Promise<Migration[]> {
  const all = readMigrations(options.dir ?? MIGRATIONS_DIR);
  const count = options.through === undefined ? all.length : all.findIndex((m) => m.name === options.through) + 1;
  if (count === 0 && options.through !== undefined) throw new Error(`unknown migration ${options.through}`);
  await session.exec(MIGRATIONS_TABLE_DDL);
  const rows = await session.query<{ name: string; checksum: string }>(`SELECT name, checksum FROM "_keyward_migrations"`);
  const done = new Map(rows.map((r) => [r.name, r.checksum]));
  return all.slice(0, count).filter((m) => {
    const previous = done.get(m.name);
    if (previous !== undefined && previous !== m.checksum) {
      throw new Error(`migration ${m.name} was changed after it was applied; refusing to start`);
    }
    return previous === undefined;
  });
}

async function apply(session: SqlSession, m: Migration): Promise<void> {
  try {
    await session.exec(m.sql);
  } catch (err) {
    throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
  }
  await session.query(`INSERT INTO "_keyward_migrations" (name, checksum) VALUES ($1, $2)`, [m.name, m.checksum]);
}

/**
 * Applies the committed SQL migrations in order, each in its own transaction, recording them in
 * `_keyward_migrations`. Refuses to start if an applied migration's file has changed since.
 * `prisma migrate deploy` is not used because it cannot run offline (docs/development.md).
 */
export async function migrate(db: Database, options: { dir?: string } = {}): Promise<string[]> {
  const session = await db.session();
  const applied: string[] = [];
  try {
    await session.query("SELECT pg_advisory_lock($1)", [ADVISORY_LOCKS.schema]);
    try {
      for (const m of await pendingMigrations(session, options)) {
        await session.exec("BEGIN");
        try {
          await apply(session, m);
          await session.exec("COMMIT");
        } catch (err) {
          await session.exec("ROLLBACK");
          throw err;
        }
        applied.push(m.name);
      }
    } finally {
      await session.query("SELECT pg_advisory_unlock($1)", [ADVISORY_LOCKS.schema]);
    }
  } finally {
    session.release();
  }
  return applied;
}

/**
 * The same, inside the caller's open transaction (PostgreSQL's DDL is transactional): a restore brings
 * an empty database to its backup's version (`through`), restores, then migrates on, all in one
 * transaction, so a restore that is refused leaves the database exactly as it found it.
 */
export async function migrateInTransaction(session: SqlSession, options: { through?: string } = {}): Promise<string[]> {
  await session.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.schema]);
  const pending = await pendingMigrations(session, options);
  for (const m of pending) await apply(session, m);
  return pending.map((m) => m.name);
}
