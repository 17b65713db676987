import { randomUUID } from "node:crypto";
import { queryOnce, type Database } from "../db/database.js";
import { auditRow, storable, type AuditInput, type AuditRow } from "./audit.js";

/** Rows per statement at most, so that one statement's JSON stays small. */
const MAX_BATCH = 500;
/** Events kept in memory while the database refuses them; past this, new calls are refused (fail closed). */
const DEFAULT_MAX_KEPT = 100_000;
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2_000;

/**
 * An event waiting for its statement. `setAside`: the database refused it and it was set aside, which
 * fails an `append` (nothing may act on an allow that is not in the chain) and settles a `keep`.
 */
type Waiting = { row: AuditRow; record?: IssuedTokenRecord; written: () => void; failed: (err: unknown) => void; setAside: () => void };

/** An issued token's record, written in the same statement as its `token.issued` event (src/tokens/tokens.ts). */
export type IssuedTokenRecord = {
  jti: string;
  agentId: string;
  grantId: string;
  upstream: string;
  methods: string[];
  paths: string[];
  issuedAt: Date;
  expiresAt: Date;
  kid: string;
  parentJti: string | undefined;
};

/** What became of one event of a statement (see #writeRows). */
type WriteOutcome = "written" | "setAside" | { failed: unknown };

/** An `append` whose event the database refused: it was set aside, and the call must not go ahead. */
export class AuditEventSetAside extends Error {}

// SQLSTATE classes that say nothing about the events themselves: the connection (08), a transaction to retry
// (40), resources (53), an operator or shutdown (57: a terminated backend says FATAL 57P01), the system (58, XX),
// a lock (55). Events failed with these are written again, never set aside.
const TRANSIENT_CLASSES = new Set(["08", "40", "53", "55", "57", "58", "XX"]);

/**
 * An error the server reported about the statement itself (severity ERROR, a refusal such as a constraint
 * or a value it cannot store), as opposed to a lost or terminated connection, which carries a severity too.
 */
const refusedByDatabase = (err: unknown) => {
  if (typeof err !== "object" || err === null) return false;
  const { severity, code } = err as { severity?: unknown; code?: unknown };
  return severity === "ERROR" && typeof code === "string" && !TRANSIENT_CLASSES.has(code.slice(0, 2));
};

const APPEND = `SELECT keyward_audit_append($1::jsonb) AS inserted`;
// The same, with the issued-token records of the batch's token.issued events: one statement, so a token is
// recorded exactly when its event is (a data-modifying WITH always runs). A batch sent again skips the
// records already in, as the function skips the events.
const APPEND_WITH_TOKENS = `
WITH "tokens" AS (
  INSERT INTO "IssuedToken" ("jti", "agentId", "grantId", "upstream", "methods", "paths", "issuedAt", "expiresAt", "kid", "parentJti")
  SELECT t."jti", t."agentId", t."grantId", t."upstream", t."methods", t."paths", t."issuedAt", t."expiresAt", t."kid", t."parentJti"
    FROM jsonb_to_recordset($2::jsonb) AS t("jti" text, "agentId" text, "grantId" text, "upstream" text, "methods" text[],
      "paths" text[], "issuedAt" timestamp(3), "expiresAt" timestamp(3), "kid" text, "parentJti" text)
  ON CONFLICT ("jti") DO NOTHING
)
SELECT keyward_audit_append($1::jsonb) AS inserted`;
const SET_ASIDE = `
WITH "kept" AS (
  INSERT INTO "AuditSetAside" ("eventId", "reason", "event") VALUES ($1, $2, $3) ON CONFLICT ("eventId") DO NOTHING RETURNING 1
)
SELECT keyward_audit_append($4::jsonb) FROM "kept"`;

/** Rows as keyward_audit_append takes them: a JSON array, each row with its place in the order as `seq`. */
export const appendJson = (rows: readonly AuditRow[]) => JSON.stringify(rows.map((row, seq) => ({ ...row, seq })));

/**
 * The audit pipeline: every event of the proxy (and of token issuance) goes through here, on PostgreSQL,
 * embedded or not.
 *
 * - **Group commit.** Events appended while a write is in flight go out together in the next statement
 *   (`keyward_audit_append`, migration 0008, which links the whole batch into the hash chain under one
 *   lock of its head). `append` settles once the statement holding the event has committed: a call waits
 *   for its own event's commit, and nothing is acknowledged before it is durable.
 * - **Exactly once.** Every event carries an `eventId`. A write whose outcome is unknown (the connection
 *   cut around COMMIT) is sent again as it was; the function skips what is already in.
 * - **Unpoisonable.** Agent-controlled text is made storable before it is hashed (`storable`). An event the
 *   database still refuses is set aside in "AuditSetAside" with the reason, and a notice of it goes into
 *   the chain; it never holds up the events behind it.
 * - **Kept outcomes.** `keep` is for events that record what already happened (an upstream's answer, a
 *   refusal already decided): if the database cannot take them now, they stay in memory and are written,
 *   in order, once it answers again, and the caller is not failed. `admit` refuses new calls while more
 *   than `maxKept` wait, so there is always room for the outcomes of calls already under way.
 */
export class AuditLog {
  #queue: Waiting[] = [];
  #writing = false;
  /** Events whose write failed, oldest first, waiting for the database. */
  #kept: AuditRow[] = [];
  #retryTimer: NodeJS.Timeout | null = null;
  #retryMs = RETRY_FIRST_MS;
  /** The retry in flight, if any: close() waits for it rather than writing the same events beside it. */
  #retrying: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly db: Pick<Database, "session">,
    private readonly hooks: {
      /** Told of every event written, with its statement's duration (the metrics: src/ops/metrics.ts). */
      onWritten: (event: AuditRow, seconds: number) => void;
      /** An event refused by the database and set aside (`reason` is the database's message). */
      onSetAside: (event: AuditRow, reason: string) => void;
      /** Writes started failing (err) or work again (null). */
      onHealth: (err: unknown | null) => void;
      maxKept?: number;
    },
  ) {}

  /** Events waiting for the database (the /metrics gauge, and `admit`). */
  get backlog(): number {
    return this.#kept.length;
  }

  /** False while so many events wait for the database that a new call's outcome might not be kept. */
  admit(): boolean {
    return this.#kept.length < (this.hooks.maxKept ?? DEFAULT_MAX_KEPT);
  }

  /**
   * Settles once the event is committed; fails if it could not be (the caller must not act on it). With
   * `record`, that issued token's record is committed in the same statement.
   */
  append(event: AuditInput, record?: IssuedTokenRecord): Promise<void> {
    const row = auditRow(event, randomUUID());
    return new Promise((written, failed) => {
      this.#queue.push({ row, record, written, failed, setAside: () => failed(new AuditEventSetAside(`audit event ${row.eventId} was set aside`)) });
      if (!this.#writing) void this.#drain();
    });
  }

  /**
   * Records what already happened. Settles once committed, or, if the database cannot take it now, once it
   * is kept for a later write: never fails. The answer it records is the one the caller then sends.
   */
  keep(event: AuditInput): Promise<void> {
    const row = auditRow(event, randomUUID());
    if (this.#kept.length > 0) {
      // Behind events already waiting: written in order once the database answers.
      this.#kept.push(row);
      return Promise.resolve();
    }
    return new Promise((written) => {
      this.#queue.push({
        row,
        written,
        failed: () => {
          this.#kept.push(row);
          this.#scheduleRetry();
          written();
        },
        setAside: written,
      });
      if (!this.#writing) void this.#drain();
    });
  }

  /** Writes what is kept, if the database takes it, and stops retrying. Returns the events it could not write. */
  async close(): Promise<AuditRow[]> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    while (this.#writing) await new Promise((r) => setTimeout(r, 5));
    await this.#retrying;
    if (this.#kept.length > 0) await this.#writeKept().catch(() => {});
    return this.#kept;
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) await this.#write(this.#queue.splice(0, MAX_BATCH));
    this.#writing = false;
  }

  async #write(batch: Waiting[]): Promise<void> {
    const outcomes = await this.#writeRows(
      batch.map((w) => w.row),
      batch.flatMap((w) => (w.record ? [w.record] : [])),
    );
    batch.forEach((w, i) => {
      const outcome = outcomes[i]!;
      if (outcome === "written") w.written();
      else if (outcome === "setAside") w.setAside();
      else {
        this.hooks.onHealth(outcome.failed);
        w.failed(outcome.failed);
      }
    });
  }

  /**
   * Writes rows (and the token records that go with them) as one statement. Refused by the database, the
   * statement failed as a whole, and one event must not fail the others: each is tried alone, and one
   * refused alone is set aside. Returns each row's outcome, in order; none throws.
   */
  async #writeRows(rows: AuditRow[], records: IssuedTokenRecord[] = []): Promise<WriteOutcome[]> {
    const startedAt = performance.now();
    try {
      await this.#insert(rows, records);
    } catch (err) {
      if (!refusedByDatabase(err)) return rows.map(() => ({ failed: err }));
      if (rows.length === 1) {
        return this.#setAside(rows[0]!, err).then(
          (): WriteOutcome[] => ["setAside"],
          (setAsideErr: unknown): WriteOutcome[] => [{ failed: setAsideErr }],
        );
      }
      const outcomes: WriteOutcome[] = [];
      for (const row of rows) outcomes.push(...(await this.#writeRows([row], records.filter((r) => r.jti === row.jti))));
      return outcomes;
    }
    const seconds = (performance.now() - startedAt) / 1000;
    for (const row of rows) this.hooks.onWritten(row, seconds);
    return rows.map(() => "written");
  }

  async #insert(rows: AuditRow[], records: IssuedTokenRecord[] = []): Promise<void> {
    if (records.length === 0) await queryOnce(this.db, APPEND, [appendJson(rows)]);
    else await queryOnce(this.db, APPEND_WITH_TOKENS, [appendJson(rows), JSON.stringify(records)]);
  }

  /**
   * Keeps the refused event with the reason, and puts a notice of it (storable by construction) in the
   * chain, in one statement: both or neither.
   */
  async #setAside(row: AuditRow, err: unknown): Promise<void> {
    const reason = storable(err instanceof Error ? err.message : String(err)).slice(0, 1000);
    const asciiJson = JSON.stringify(row).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    const notice = auditRow(
      { kind: "audit.set_aside", actor: "keyward", requestId: row.requestId, details: { eventId: row.eventId, kind: row.kind, reason } },
      `${row.eventId}:set-aside`,
    );
    await queryOnce(this.db, SET_ASIDE, [row.eventId, reason, asciiJson, appendJson([notice])]);
    this.hooks.onSetAside(row, reason);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    // Jittered, so replicas that lost the same database do not come back in step.
    const delay = this.#retryMs * (0.5 + Math.random() / 2);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#retrying = this.#writeKept().then(
        () => {
          this.#retryMs = RETRY_FIRST_MS;
          this.hooks.onHealth(null);
        },
        (err) => {
          this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
          this.hooks.onHealth(err);
          this.#scheduleRetry();
        },
      );
    }, delay);
    this.#retryTimer.unref();
  }

  /**
   * Writes kept events in order, a batch at a time; resent batches are skipped by their eventIds. Throws
   * on the first event the database could not take, keeping it and those after it.
   */
  async #writeKept(): Promise<void> {
    while (this.#kept.length > 0) {
      const batch = this.#kept.slice(0, MAX_BATCH);
      const outcomes = await this.#writeRows(batch);
      const firstFailed = outcomes.findIndex((o) => typeof o === "object");
      this.#kept.splice(0, firstFailed === -1 ? batch.length : firstFailed);
      if (firstFailed !== -1) throw (outcomes[firstFailed] as { failed: unknown }).failed;
    }
  }
}
