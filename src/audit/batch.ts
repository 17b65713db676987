import { queryOnce, type Database } from "../db/database.js";
import { auditRow, type AuditInput } from "./audit.js";

type Pending = { row: AuditRow; written: () => void; failed: (err: unknown) => void };

/**
 * Where the proxy appends its events: straight to the database in group commits (AuditBatcher), or to
 * a local write-ahead journal shipped to the database behind it (AuditJournal, src/audit/journal.ts).
 * `append` settles once the event is durable; `settled` once every event appended so far can be read
 * back from the database (or, while the database refuses them, after a bounded wait: the read then
 * shows what is there).
 */
export interface AuditLog {
  append(event: AuditInput): Promise<void>;
  settled(): Promise<void>;
}

/** Rows per statement at most, so that one statement's JSON stays small. */
const MAX_BATCH = 200;

export type AuditRow = ReturnType<typeof auditRow>;

// One statement, its rows in one JSON parameter, sent on a connection of the pool without Prisma: no
// transaction around it (Prisma's createMany costs BEGIN, INSERT and COMMIT) and no query to compile.
// Rows go in the order they were given (seq), which is the order the link trigger chains them in.
// Times are UTC, as Prisma stores them.
const INSERT_ROWS = `
INSERT INTO "AuditEvent" ("at", "requestId", "actor", "kind", "agentId", "jti", "grantId", "upstream", "environment",
  "method", "path", "decision", "reason", "status", "latencyMs", "details", "contentHash")
SELECT "at", "requestId", "actor", "kind", "agentId", "jti", "grantId", "upstream", "environment",
  "method", "path", "decision", "reason", "status", "latencyMs", "details", "contentHash"
FROM jsonb_to_recordset($1::jsonb) AS t("seq" bigint, "at" timestamp(3), "requestId" text, "actor" text, "kind" text,
  "agentId" text, "jti" text, "grantId" text, "upstream" text, "environment" text, "method" text, "path" text,
  "decision" text, "reason" text, "status" int, "latencyMs" int, "details" jsonb, "contentHash" text)
ORDER BY "seq"`;

// The same, moving a journal's cursor in the same statement (a data-modifying WITH always runs, and the
// statement commits or fails as a whole), so a replayed journal can tell exactly which events are in.
const INSERT_ROWS_MOVING_CURSOR = `
WITH "cursor" AS (
  INSERT INTO "AuditJournalCursor" ("journalId", "shippedSeq") VALUES ($2, $3)
  ON CONFLICT ("journalId") DO UPDATE SET "shippedSeq" = EXCLUDED."shippedSeq", "updatedAt" = CURRENT_TIMESTAMP
)${INSERT_ROWS}`;

/** Rows as insertAuditRows takes them: a JSON array, each row with its place in the order as `seq`. */
export const auditRowsJson = (rows: readonly AuditRow[]) => JSON.stringify(rows.map((row, seq) => ({ ...row, seq })));

/**
 * Inserts rows (auditRowsJson, or the journal's own lines) into the audit log in the order of their
 * `seq`, as one statement; with `journal`, also records that journal's events through `shippedSeq` as
 * shipped (src/audit/journal.ts).
 */
export async function insertAuditRows(
  db: Pick<Database, "session">,
  json: string,
  journal?: { id: string; shippedSeq: number },
): Promise<void> {
  if (journal) await queryOnce(db, INSERT_ROWS_MOVING_CURSOR, [json, journal.id, journal.shippedSeq]);
  else await queryOnce(db, INSERT_ROWS, [json]);
}

/** An error the server reported about the statement (pg's and PGlite's both carry its severity). */
const refusedByDatabase = (err: unknown) => typeof err === "object" && err !== null && "severity" in err;

/**
 * Group commit for the audit log: events appended while a write is in flight go out together in the
 * next one, as one multi-row INSERT, and each caller's promise settles only when the statement holding
 * its row has committed. Nothing is acknowledged before it is durable, so a crash loses only events
 * whose requests were never answered, exactly as with one INSERT each. A write starts as soon as none is
 * in flight, so a lone request waits no longer than it would have. The hash-chain trigger (migration
 * 0002) links the rows one by one, in the order they were appended, under one lock of the chain head.
 */
export class AuditBatcher implements AuditLog {
  #queue: Pending[] = [];
  #writing = false;

  constructor(
    private readonly db: Pick<Database, "session">,
    /** Told of every event written, with its statement's duration (the metrics: src/ops/metrics.ts). */
    private readonly onWritten: (event: AuditInput, seconds: number) => void,
  ) {}

  append(event: AuditInput): Promise<void> {
    return new Promise((written, failed) => {
      this.#queue.push({ row: auditRow(event), written, failed });
      if (!this.#writing) void this.#drain();
    });
  }

  /** Appends settle only once committed, so there is never anything left to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) await this.#write(this.#queue.splice(0, MAX_BATCH));
    this.#writing = false;
  }

  async #write(batch: Pending[]): Promise<void> {
    const startedAt = performance.now();
    try {
      await insertAuditRows(this.db, auditRowsJson(batch.map((p) => p.row)));
      const seconds = (performance.now() - startedAt) / 1000;
      for (const p of batch) {
        this.onWritten(p.row, seconds);
        p.written();
      }
    } catch (err) {
      // Refused by the database: the statement failed as a whole, and one event must not fail the others'
      // requests, so each is retried alone. Unreachable: all fail at once, rather than each waiting again.
      if (batch.length > 1 && refusedByDatabase(err)) {
        for (const p of batch) await this.#write([p]);
      } else {
        for (const p of batch) p.failed(err);
      }
    }
  }
}
