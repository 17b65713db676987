import { contentHash, type AuditContent } from "../audit/chain.js";
import type { Database, SqlSession } from "./database.js";
import { ADVISORY_LOCKS } from "./locks.js";
import type { Vault } from "../vault/vault.js";
import { BackupSeal } from "./backup-seal.js";
import { migrateInTransaction, migrationNames } from "./migrate.js";
import { RestoreRefused } from "./restore-refused.js";

/**
 * Backup and restore of Keyward's own database as JSON Lines: a header, then one line per row of every
 * table, `{"table": "...", "row": {...}}`, parents before children, each table in primary-key order,
 * then the seal, `{"seal": "<hex>"}` (backup-seal.ts). Rows are copied as stored, so upstream secrets and
 * signing keys stay encrypted under the master key (which is not in the backup: restoring needs the same
 * key), and only hashes of admin keys and client secrets are there. Plain SQL through a session.
 */
export const BACKUP_FORMAT = "keyward-backup/2";
/** Backups written before the seal: restored only when the operator says the file is trusted. */
const UNSEALED_FORMAT = "keyward-backup/1";

/**
 * `rows` counts every table's rows in the snapshot, so a backup cut short (a copy that stopped, a
 * `keyward backup` that died, even at a line boundary) is refused rather than restored in part. Backups
 * written before it have no `rows`, and restore as before. `seal` is the seal's key under the master key.
 */
export type BackupHeader = {
  format: typeof BACKUP_FORMAT | typeof UNSEALED_FORMAT;
  createdAt: string;
  migrations: string[];
  rows?: Record<string, number>;
  seal?: string;
};

const MIGRATIONS_TABLE = "_keyward_migrations";
/** Rows the migrations themselves insert: single rows that count from 0 until Keyward first writes. */
const SEEDED_SINGLETONS = ["AuditChainHead", "AuditSinkCursor"];
const BATCH_ROWS = 500;

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;

/**
 * A line of the backup, parsed. One that is not a JSON object is refused by its number only: JSON.parse's
 * own message quotes the text, and a file given by mistake (a master key file, an .env) is secret.
 */
function parseLine(text: string, lineNumber: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw new RestoreRefused(
    lineNumber === 1
      ? `not a Keyward backup (its first line is not a ${BACKUP_FORMAT} header)`
      : `line ${lineNumber} of the backup is not a whole JSON line: the backup is cut short or corrupted`,
  );
}

async function appliedMigrations(session: SqlSession): Promise<string[]> {
  const rows = await session.query<{ name: string }>(`SELECT name FROM ${quote(MIGRATIONS_TABLE)} ORDER BY name`);
  return rows.map((r) => r.name);
}

/** Keyward's tables, each after the tables its foreign keys point to. */
async function tablesInDependencyOrder(session: SqlSession, schema: string): Promise<string[]> {
  const tables = (
    await session.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name <> $2 ORDER BY table_name`,
      [schema, MIGRATIONS_TABLE],
    )
  ).map((r) => r.name);
  const references = await session.query<{ child: string; parent: string }>(
    `SELECT child.relname AS child, parent.relname AS parent FROM pg_constraint c
       JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid
       JOIN pg_namespace n ON n.oid = child.relnamespace
      WHERE c.contype = 'f' AND n.nspname = $1 AND child.relname <> parent.relname`,
    [schema],
  );
  const ordered: string[] = [];
  const visit = (table: string, path: string[]) => {
    if (ordered.includes(table)) return;
    if (path.includes(table)) throw new Error(`foreign keys form a cycle through ${table}`);
    for (const r of references) if (r.child === table) visit(r.parent, [...path, table]);
    ordered.push(table);
  };
  for (const table of tables) visit(table, []);
  return ordered;
}

async function primaryKey(session: SqlSession, table: string): Promise<string[]> {
  const rows = await session.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [quote(table)],
  );
  return rows.map((r) => r.name);
}

/**
 * The backup's lines (without newlines), read in one repeatable-read snapshot: consistent even while
 * brokers keep writing to PostgreSQL (the embedded one belongs to one broker: stop it first), and sealed
 * under `vault`'s master key.
 */
export async function* backupLines(db: Database, vault: Vault): AsyncGenerator<string> {
  const seal = BackupSeal.create(vault);
  const sealed = (line: string) => {
    seal.add(line);
    return line;
  };
  const session = await db.session();
  let open = false;
  try {
    await session.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    open = true;
    const tables = await tablesInDependencyOrder(session, db.schema);
    const rows: Record<string, number> = {};
    for (const table of tables) {
      const [{ count }] = (await session.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${quote(table)}`)) as [{ count: number }];
      rows[table] = count;
    }
    const header: BackupHeader = {
      format: BACKUP_FORMAT,
      createdAt: new Date().toISOString(),
      migrations: await appliedMigrations(session),
      rows,
      seal: seal.sealedKey,
    };
    yield sealed(JSON.stringify(header));
    for (const table of tables) {
      const order = (await primaryKey(session, table)).map(quote).join(", ");
      // A cursor, so that a large audit log is never held in memory whole.
      await session.exec(`DECLARE backup_rows NO SCROLL CURSOR FOR
        SELECT row_to_json(t)::text AS row FROM ${quote(table)} t ${order ? `ORDER BY ${order}` : ""}`);
      for (;;) {
        const rows = await session.query<{ row: string }>(`FETCH ${BATCH_ROWS} FROM backup_rows`);
        if (rows.length === 0) break;
        for (const { row } of rows) yield sealed(`{"table":${JSON.stringify(table)},"row":${row}}`);
      }
      await session.exec("CLOSE backup_rows");
    }
    await session.exec("COMMIT");
    open = false;
  } finally {
    if (open) await session.exec("ROLLBACK").catch(() => {});
    session.release();
  }
  yield JSON.stringify({ seal: seal.digest() });
}


/** An audit event as the backup has it: `at` is a timestamp without zone, in UTC, as stored. */
type AuditLink = { id: string | number; at: string; contentHash: string | null; prevHash: string | null; hash: string | null };

/**
 * The header, checked, and the seal it names opened (every line up to the seal line is added to it):
 * the backup's migrations must be this Keyward's first ones (a newer backup is refused), and a backup
 * without a seal is refused unless `allowUnsealed`.
 */
async function readHeader(
  lines: AsyncIterator<string>,
  options: { vault: Vault | null; allowUnsealed?: boolean },
): Promise<{ header: BackupHeader; seal: BackupSeal | null }> {
  const first = await lines.next();
  const parsed = first.done ? null : (parseLine(first.value, 1) as Partial<BackupHeader>);
  const rows = parsed?.rows;
  const rowsValid = rows === undefined || (typeof rows === "object" && rows !== null && Object.values(rows).every((n) => Number.isSafeInteger(n) && n >= 0));
  const formatKnown = parsed?.format === BACKUP_FORMAT || parsed?.format === UNSEALED_FORMAT;
  if (!parsed || !formatKnown || !Array.isArray(parsed.migrations) || !rowsValid) {
    throw new RestoreRefused(`not a Keyward backup (expected a ${BACKUP_FORMAT} header line)`);
  }
  const header = parsed as BackupHeader;
  const seal = header.format === BACKUP_FORMAT ? BackupSeal.open(options.vault, header.seal) : null;
  if (!seal && !options.allowUnsealed) {
    throw new RestoreRefused(
      "the backup is not sealed (written by a Keyward before backups were): anyone who could edit the file could have dropped revocations or widened grants; restore it with --allow-unsealed only if you trust the file",
    );
  }
  seal?.add(first.value as string);
  const known = migrationNames();
  if (JSON.stringify(known.slice(0, header.migrations.length)) !== JSON.stringify(header.migrations)) {
    throw new RestoreRefused(`the backup is of schema version ${header.migrations.at(-1)}, which this Keyward does not know: restore with a newer Keyward`);
  }
  return { header, seal };
}

/**
 * Restores a backup into an empty database, in one transaction, migrations included: any problem leaves
 * the database as it was. The database is migrated to the backup's schema version first, and on to this
 * Keyward's after, so a backup from an older version restores into a newer one. Refused unless the
 * database is empty (nothing but what the migrations wrote) and not already past the backup's version,
 * and unless every line up to the last matches the seal (or the operator allows an unsealed backup).
 *
 * Audit events are checked against their content hash, then appended through the hash chain (the link
 * trigger before migration 0008, keyward_audit_append since) like any new event, in id order, starting from the backup's first event; each must come out with the id and
 * hash it had, and the chain must end at the backup's head. So a restore reproduces the chain exactly,
 * and a backup whose audit log was altered is refused rather than re-hashed. (Pruning checkpoints are
 * signed under the master key: `keyward audit verify` on the restored broker checks those.)
 */
export async function restoreBackup(
  db: Database,
  lines: AsyncIterable<string>,
  options: { vault: Vault | null; allowUnsealed?: boolean; checkRow?: (table: string, row: Record<string, unknown>) => void },
): Promise<Record<string, number>> {
  const iterator = lines[Symbol.asyncIterator]();
  const { header, seal } = await readHeader(iterator, options);
  const session = await db.session();
  const restored: Record<string, number> = {};
  try {
    await session.exec("BEGIN");
    try {
      // One restore at a time: a second one into the same database waits, then finds it not empty.
      await session.query(`SELECT pg_advisory_xact_lock($1)`, [ADVISORY_LOCKS.restore]);
      await migrateInTransaction(session, { through: header.migrations.at(-1) });
      if (JSON.stringify(await appliedMigrations(session)) !== JSON.stringify(header.migrations)) {
        throw new RestoreRefused(`the database is past the backup's schema version ${header.migrations.at(-1)}: restore into a new database`);
      }
      const tables = await tablesInDependencyOrder(session, db.schema);
      await assertEmpty(session, tables);
      // The sink cursor's seeded row gives way to the backup's; the chain head is moved by the events themselves.
      await session.exec(`DELETE FROM "AuditSinkCursor"`);

      let expectedHead: { lastId: string | number; lastHash: string } | undefined;
      let chainStarted = false;
      let batch: { table: string; rows: Record<string, unknown>[] } | null = null;
      const flush = async () => {
        if (!batch) return;
        const { table, rows } = batch;
        batch = null;
        if (table === "AuditEvent" && !chainStarted) {
          await startChainAt(session, rows[0] as unknown as AuditLink);
          chainStarted = true;
        }
        const inserted =
          table === "AuditEvent" && header.migrations.includes(PER_BATCH_CHAIN)
            ? await appendAuditRows(session, rows)
            : await insertRows(session, db.schema, table, rows);
        if (table === "AuditEvent") assertChainReplayed(rows as unknown as AuditLink[], inserted as AuditLink[]);
        restored[table] = (restored[table] ?? 0) + rows.length;
      };

      const seen: Record<string, number> = {};
      let lineNumber = 1;
      let sealLine: { seal: unknown } | undefined;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        lineNumber++;
        if (sealLine) {
          if (next.value.trim() === "") continue;
          throw new RestoreRefused(`line ${lineNumber} of the backup comes after its seal: lines were added to it`);
        }
        if (seal && next.value.startsWith('{"seal":')) {
          sealLine = parseLine(next.value, lineNumber) as { seal: unknown };
          continue;
        }
        seal?.add(next.value);
        if (next.value.trim() === "") continue;
        // Numbers are read as JavaScript numbers: exact up to 2^53, far beyond any id Keyward will reach.
        const { table, row } = parseLine(next.value, lineNumber) as { table: unknown; row: unknown };
        if (typeof table !== "string" || typeof row !== "object" || row === null || Array.isArray(row)) {
          throw new RestoreRefused(`line ${lineNumber} of the backup is not a table row: the backup is corrupted`);
        }
        if (!tables.includes(table)) throw new RestoreRefused(`the backup has rows for an unknown table ${table}`);
        seen[table] = (seen[table] ?? 0) + 1;
        options.checkRow?.(table, row as Record<string, unknown>);
        if (table === "AuditChainHead") {
          // Not copied: the trigger rebuilds the head as the events go in; it must end where the backup's did.
          expectedHead = row as unknown as typeof expectedHead;
          continue;
        }
        if (batch && (batch.table !== table || batch.rows.length >= BATCH_ROWS)) await flush();
        batch ??= { table, rows: [] };
        batch.rows.push(row as Record<string, unknown>);
      }
      await flush();
      if (header.rows) assertComplete(header.rows, seen);
      if (seal && !sealLine) throw new RestoreRefused("the backup has no seal line at its end: it was cut short");
      if (seal && !seal.matches(sealLine!.seal)) {
        throw new RestoreRefused("the backup's seal does not match its lines: it was altered after `keyward backup` wrote it");
      }
      if (!expectedHead) throw new RestoreRefused("the backup has no audit chain head: it is incomplete");
      await finishChain(session, expectedHead, chainStarted);
      await resetSequences(session, db.schema);
      await migrateInTransaction(session);
      await session.exec("COMMIT");
    } catch (err) {
      await session.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  } finally {
    session.release();
  }
  return restored;
}

/** Every table has the rows the header counted: none missing at the end or in between. */
function assertComplete(expected: Record<string, number>, seen: Record<string, number>): void {
  for (const table of new Set([...Object.keys(expected), ...Object.keys(seen)])) {
    const [has, of] = [seen[table] ?? 0, expected[table] ?? 0];
    if (has !== of) throw new RestoreRefused(`the backup is incomplete: ${table} has ${has} of its ${of} rows; it was cut short or altered`);
  }
}

async function assertEmpty(session: SqlSession, tables: string[]): Promise<void> {
  for (const table of tables) {
    const seeded = SEEDED_SINGLETONS.includes(table);
    const [{ count }] = (await session.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM ${quote(table)} ${seeded ? `WHERE "lastId" <> 0` : ""}`,
    )) as [{ count: number }];
    if (count > 0) throw new RestoreRefused(`the database is not empty (${table} has rows): restore only into an empty database`);
  }
}

/** INSERTs rows in order (the audit trigger depends on it), returning what the database stored for each. */
async function insertRows(session: SqlSession, schema: string, table: string, rows: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  const columns = (
    await session.query<{ name: string }>(
      `SELECT column_name AS name FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER' ORDER BY ordinal_position`,
      [schema, table],
    )
  ).map((r) => quote(r.name));
  const list = columns.join(", ");
  return session.query(
    `INSERT INTO ${quote(table)} (${list})
       SELECT ${list} FROM json_populate_recordset(NULL::${quote(table)}, $1::json) WITH ORDINALITY AS r ORDER BY r.ordinality
     RETURNING *`,
    [JSON.stringify(rows)],
  );
}

/** From this migration on, events go in through keyward_audit_append, which links them; before it, a row trigger did. */
const PER_BATCH_CHAIN = "0008_audit_pipeline";

/** Appends backed-up events in order as any new batch is, returning what the database stored for each. */
async function appendAuditRows(session: SqlSession, rows: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  await session.query(`SELECT keyward_audit_append($1::jsonb)`, [JSON.stringify(rows.map((row, seq) => ({ ...row, seq })))]);
  const [first, last] = [rows[0]!.id, rows.at(-1)!.id].map(String);
  return session.query(`SELECT * FROM "AuditEvent" WHERE "id" BETWEEN $1::bigint AND $2::bigint ORDER BY "id"`, [first, last]);
}

/** Points the chain head just before the backup's first event, so the trigger gives it its own id and prevHash. */
async function startChainAt(session: SqlSession, first: AuditLink): Promise<void> {
  if (first.prevHash === null) {
    throw new RestoreRefused("the backup has audit events without hashes (written before migration 0002): they cannot be replayed");
  }
  await session.query(`UPDATE "AuditChainHead" SET "lastId" = $1::bigint - 1, "lastHash" = $2 WHERE "id" = 1`, [String(first.id), first.prevHash]);
}

/** Each event's content still hashes to its contentHash, and the trigger gave it the id and hash it had. */
function assertChainReplayed(backedUp: AuditLink[], stored: AuditLink[]): void {
  backedUp.forEach((event, i) => {
    const content = { ...event, at: new Date(`${event.at}Z`) } as AuditContent;
    const why =
      contentHash(content) !== event.contentHash ? "its content does not match its hash"
      : String(stored[i]!.id) !== String(event.id) || stored[i]!.hash !== event.hash ? "it does not link to the events before it"
      : null;
    if (why) throw new RestoreRefused(`the backup's audit log does not verify at event ${event.id}: ${why}; it was altered or is incomplete`);
  });
}

async function finishChain(session: SqlSession, expected: { lastId: string | number; lastHash: string }, chainStarted: boolean): Promise<void> {
  if (!chainStarted) {
    // No events (all pruned, say): the head is the backup's, as recorded.
    await session.query(`UPDATE "AuditChainHead" SET "lastId" = $1::bigint, "lastHash" = $2 WHERE "id" = 1`, [String(expected.lastId), expected.lastHash]);
  }
  const [head] = await session.query<{ lastId: string; lastHash: string }>(`SELECT "lastId"::text AS "lastId", "lastHash" FROM "AuditChainHead" WHERE "id" = 1`);
  if (head?.lastId !== String(expected.lastId) || head.lastHash !== expected.lastHash) {
    throw new RestoreRefused("the restored audit chain does not end at the backup's head: the backup is incomplete");
  }
}

/** Serial columns continue after the restored ids. */
async function resetSequences(session: SqlSession, schema: string): Promise<void> {
  const serials = await session.query<{ table: string; column: string }>(
    `SELECT table_name AS table, column_name AS column FROM information_schema.columns
      WHERE table_schema = $1 AND column_default LIKE 'nextval(%'`,
    [schema],
  );
  for (const { table, column } of serials) {
    await session.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT max(${quote(column)}) FROM ${quote(table)}), 0) + 1, false)`,
      [quote(table), column],
    );
  }
}
