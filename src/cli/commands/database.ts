import { createWriteStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { loadDatabaseConfig, loadMasterKeyConfig } from "../../config/config.js";
import { parseMasterKey, readLocalMasterKey, Vault } from "../../vault/vault.js";
import type { Database } from "../../db/database.js";
import { contextOf, examples } from "../context.js";
import { CliError } from "../connection.js";
import { emit, note, table } from "../output.js";

/**
 * The lines of a stream, read only once the first is asked for: readline drops lines emitted before
 * its iterator exists, and restore asks only after migrating.
 */
async function* linesOf(input: NodeJS.ReadableStream): AsyncGenerator<string> {
  yield* createInterface({ input, crlfDelay: Infinity });
}

/**
 * The broker's database as configured (DATABASE_URL, else the embedded one in KEYWARD_DATA_DIR). `existing`:
 * an embedded data dir without a database is refused, not given a new one (a wrong KEYWARD_DATA_DIR).
 */
async function withDatabase<T>(
  work: (db: Database, config: ReturnType<typeof loadDatabaseConfig>) => Promise<T>,
  { existing = false }: { existing?: boolean } = {},
): Promise<T> {
  const config = loadDatabaseConfig();
  // Loaded here, not with the command tree: the database drivers would slow every other command's start.
  const { openDatabase, databaseOptionsOf } = await import("../../db/database.js");
  const where = databaseOptionsOf(config);
  const db = await openDatabase(where.kind === "embedded" ? { ...where, mustExist: existing } : where);
  try {
    if (existing) await assertKeywardDatabase(db);
    return await work(db, config);
  } finally {
    await db.close();
  }
}

/** Refuses a database no Keyward has migrated: DATABASE_URL names another database or schema than the broker's. */
export async function assertKeywardDatabase(db: Database): Promise<void> {
  const { hasKeywardDatabase } = await import("../../db/migrate.js");
  if (!(await hasKeywardDatabase(db))) {
    throw new CliError(`there is no Keyward database in schema "${db.schema}" of that database: set DATABASE_URL to the broker's (its schema too, if it names one)`);
  }
}

/**
 * The broker's master key(s): KEYWARD_MASTER_KEY (and the previous one, during a rotation), else, for the
 * embedded database, the data dir's master.key if there is one. Never creates one: a generated key could
 * read nothing a backup holds, and seal nothing the broker's key could check.
 */
function configuredVault(config: ReturnType<typeof loadMasterKeyConfig>): Vault | null {
  if (config.masterKey) {
    return new Vault(parseMasterKey(config.masterKey), config.masterKeyPrevious ? parseMasterKey(config.masterKeyPrevious) : undefined);
  }
  const local = config.databaseUrl ? null : readLocalMasterKey(config.dataDir);
  return local && new Vault(local);
}

/** Commands that work on the database directly, not through a running broker. */
export function databaseCommands(program: Command): void {
  program
    .command("serve")
    .description("run the broker (what `npm start` runs), configured by the environment: see docs/configuration.md")
    .option("--port <port>", "listen port (PORT)")
    .option("--host <host>", "listen address (HOST)")
    .addHelpText("after", examples("keyward serve", "DATABASE_URL=postgresql://keyward@db/keyward KEYWARD_MASTER_KEY_FILE=/run/secrets/master_key keyward serve --host 0.0.0.0"))
    .action(async (options: { port?: string; host?: string }) => {
      if (options.port) process.env.PORT = options.port;
      if (options.host) process.env.HOST = options.host;
      // The broker's entry point starts it when loaded, and stops it on SIGTERM/SIGINT.
      await import("../../main.js");
    });

  program
    .command("migrate")
    .description("apply pending database migrations (the broker also applies them at start)")
    .addHelpText("after", examples("DATABASE_URL=postgresql://keyward@db/keyward keyward migrate"))
    .action(async (_options, command: Command) => {
      const { out } = contextOf(command);
      const { migrate } = await import("../../db/migrate.js");
      const applied = await withDatabase((db) => migrate(db));
      emit(out, { applied }, () => (applied.length ? `applied ${applied.join(", ")}` : "the database is up to date"));
    });

  program
    .command("backup")
    .description("write a backup of the broker's database as JSON Lines, sealed under the master key; secrets stay encrypted under it, and it is not in the backup")
    .option("-o, --out <file>", "write to this file (created 0600) instead of stdout")
    .addHelpText(
      "after",
      "\nOn PostgreSQL the backup is one consistent snapshot while brokers run; stop an embedded broker first.\n" +
        "It needs the broker's master key (KEYWARD_MASTER_KEY, or the embedded data dir's master.key): restore checks the seal with it.\n" +
        examples("keyward backup -o keyward-$(date +%F).jsonl", "DATABASE_URL=postgresql://keyward@db/keyward keyward backup | gzip > keyward.jsonl.gz"),
    )
    .action(async (options: { out?: string }, command: Command) => {
      const { out } = contextOf(command);
      const { backupLines } = await import("../../db/backup.js");
      const vault = configuredVault(loadMasterKeyConfig());
      if (!vault) {
        throw new CliError(
          "keyward backup seals the backup under the broker's master key, and none is given: set KEYWARD_MASTER_KEY (or KEYWARD_MASTER_KEY_FILE) as the broker has it, or KEYWARD_DATA_DIR to the embedded broker's data dir",
        );
      }
      await withDatabase(async (db, config) => {
        // An embedded broker that crashed left what it had acknowledged in its spool: into the database first.
        if (db.kind === "embedded") {
          const { shipLeftBehind } = await import("../../audit/left-behind.js");
          const { found, unshipped } = await shipLeftBehind(db, join(config.dataDir, "audit-spool"));
          if (unshipped > 0) throw new CliError(`${unshipped} audit events a stopped broker left in its spool could not be written to the database; the backup would lack them`);
          if (found > 0) note(out, `wrote ${found} audit events a stopped broker had left in its spool`);
        }
        const lines = Readable.from((async function* () {
          for await (const line of backupLines(db, vault)) yield line + "\n";
        })());
        if (!options.out) return pipeline(lines, process.stdout, { end: false });
        const file = createWriteStream(options.out, { mode: 0o600, flags: "wx" });
        await once(file, "open");
        // A backup that failed part-way is removed, not left looking like one (restore would refuse it).
        await pipeline(lines, file).catch(async (err: unknown) => {
          await rm(options.out!, { force: true });
          throw err;
        });
      }, { existing: true });
      if (options.out) note(out, `backup written to ${options.out}`, "green");
    });

  program
    .command("restore")
    .description("restore a backup into an EMPTY database (refused otherwise), with the same master key")
    .argument("<file>", "the backup, or - for stdin")
    .option("--allow-unsealed", "restore a backup written before backups were sealed (only a file you trust: nothing shows whether it was edited)")
    .addHelpText(
      "after",
      "\nRun it before the first start of the new broker. The audit chain is replayed and checked event by event.\n" +
        examples("KEYWARD_DATA_DIR=./restored keyward restore keyward-2026-05-01.jsonl", "gunzip -c keyward.jsonl.gz | DATABASE_URL=postgresql://keyward@db/fresh keyward restore -"),
    )
    .action(async (file: string, options: { allowUnsealed?: boolean }, command: Command) => {
      const { out } = contextOf(command);
      // Opened before anything else, so a wrong path fails at once.
      const input = file === "-" ? process.stdin : (await open(file)).createReadStream();
      const { restoreBackup } = await import("../../db/backup.js");
      const { assertRestorable } = await import("../../vault/reencrypt.js");
      const config = loadMasterKeyConfig();
      // The key the broker will read the secrets with: refused now, before anything is written, if it cannot.
      const vault = configuredVault(config);
      const restored = await withDatabase((db) =>
        restoreBackup(db, linesOf(input), { vault, allowUnsealed: options.allowUnsealed, checkRow: (table, row) => assertRestorable(vault, table, row) }),
      );
      const rows = Object.entries(restored).map(([name, count]) => ({ table: name, rows: count }));
      emit(out, { restored }, () => table(out, rows, ["table", "rows"]));
    });

  program
    .command("rotate-master-key")
    .description("re-encrypt every stored secret under KEYWARD_MASTER_KEY, reading what is under KEYWARD_MASTER_KEY_PREVIOUS")
    .addHelpText("after", "\nSee docs/secrets.md, \"Rotating the master key\", for the whole procedure.\n" + examples("KEYWARD_MASTER_KEY=$NEW KEYWARD_MASTER_KEY_PREVIOUS=$OLD DATABASE_URL=… keyward rotate-master-key"))
    .action(async (_options, command: Command) => {
      const { out } = contextOf(command);
      const { rotateMasterKey } = await import("../rotate-master-key.js");
      const result = await rotateMasterKey();
      for (const what of result.unreadable) note(out, what, "red");
      emit(out, result, () => `re-encrypted ${result.reencrypted} secret(s); ${result.remaining} still under another key`);
      // Not done until nothing needs the previous key: a script may remove it only after exit 0.
      if (result.remaining > 0) process.exitCode = 1;
    });
}
