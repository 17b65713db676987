import { createHash, randomUUID } from "node:crypto";
import { queryOnce, type Database } from "../db/database.js";
import { batchJsonb, batchJsonOf, serialisedAuditRow, storable, type AuditInput, type AuditRow } from "./audit.js";
import { escapedCodeUnit } from "./event-text.js";
import type { AuditSpool, RecoveredEvents, Segment } from "./spool.js";
import { jittered } from "../util/jitter.js";

/** This database's audit chain, as a broker's spool names it (migration 0022): spools of another are never adopted. */
export async function auditChainId(db: Database): Promise<string> {
  const [head] = await queryOnce<{ chainId: string }>(db, `SELECT "chainId" FROM "AuditChainHead" WHERE "id" = 1`);
  if (!head) throw new Error("the audit chain head is missing: the database was not migrated");
  return head.chainId;
}

/** Rows per statement at most, so that one statement's JSON stays small. */
const MAX_BATCH = 500;
/** Events kept in memory while the database refuses them; past this, new calls are refused (fail closed). */
const DEFAULT_MAX_KEPT = 100_000;
/**
 * Events waiting for the database past which new ones wait for room (while the database answers): calls
 * then go at the pace the database takes their events, instead of piling them up in memory.
 */
const HIGH_WATER = 5_000;
/**
 * How long a few events wait for others to ship with (no call or token waits on it). The database's cost
 * is mostly per statement: measured on PostgreSQL 15 (migration 0018), 467 µs of server CPU
 * per event in statements of 1, 92 µs in statements of 8, 59 in statements of 34, 46 in statements of 160.
 * Calls never wait on shipping (the spool is their commit point); what waits is noticing a database that
 * went down, by at most this long, and the events' showing in the log. Measured on a broker at c=16 on the
 * embedded default: 5 ms gave statements of ~34 events and 150-180 µs of PostgreSQL CPU per call; 20 ms
 * gives ~160 and 110-140 µs, and the broker sends fewer statements (with migration 0018, side by side:
 * 4-9% less of its own CPU per call).
 */
const LINGER_MS = 20;
/** Waiting past which the shipper goes on at once, linger or not: a statement's worth. */
const LINGER_BELOW = 400;
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 1_000;

/**
 * An event on its way to the database. `json` is the line as spooled and as shipped (a token's event
 * carries its issued-token record in it, so that a spool adopted after a crash records the token too);
 * `segment` the spool file holding it (null when the disk refused it).
 */
type Entry = {
  row: AuditRow;
  json: string;
  record?: IssuedTokenRecord;
  segment: Segment | null;
};

/**
 * An issued token's record, written in the same statement as its `token.issued` event (src/tokens/tokens.ts).
 * Read back from a spool line, its dates are ISO strings: the statement takes either as JSON.
 */
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

// SQLSTATE classes that say nothing about the events themselves: the connection (08), a transaction to retry
// (40), resources (53), an operator or shutdown (57: a terminated backend says FATAL 57P01), the system (58, XX),
// a lock (55), and a prepared statement the session no longer has (26: the pipeline's statements are
// prepared per connection, which a transaction-mode pooler does not keep). Events failed with these are
// written again, never set aside.
const TRANSIENT_CLASSES = new Set(["08", "26", "40", "53", "55", "57", "58", "XX"]);

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
const insertTokens = (param: string) => `
  INSERT INTO "IssuedToken" ("jti", "agentId", "grantId", "upstream", "methods", "paths", "issuedAt", "expiresAt", "kid", "parentJti")
  SELECT t."jti", t."agentId", t."grantId", t."upstream", t."methods", t."paths", t."issuedAt", t."expiresAt", t."kid", t."parentJti"
    FROM jsonb_to_recordset(${param}::jsonb) AS t("jti" text, "agentId" text, "grantId" text, "upstream" text, "methods" text[],
      "paths" text[], "issuedAt" timestamp(3), "expiresAt" timestamp(3), "kid" text, "parentJti" text)
  ON CONFLICT ("jti") DO NOTHING`;
const APPEND_WITH_TOKENS = `
WITH "tokens" AS (${insertTokens("$2")})
SELECT keyward_audit_append($1::jsonb) AS inserted`;
// A token's event set aside still records its token ($5, one record or none): the token was answered when its
// event was spooled, and a revocation by jti needs the record.
const SET_ASIDE = `
WITH "tokens" AS (${insertTokens("$5")}),
"kept" AS (
  INSERT INTO "AuditSetAside" ("eventId", "reason", "event") VALUES ($1, $2, $3) ON CONFLICT ("eventId") DO NOTHING RETURNING 1
)
SELECT keyward_audit_append($4::jsonb) FROM "kept"`;

/** A token's event as spooled: the line with its issued-token record in it (outside the event's content and hash). */
const withIssuedToken = (json: string, record: IssuedTokenRecord) => `${json.slice(0, -1)},"issuedToken":${JSON.stringify(record)}}`;

/** A spooled line as the entry to ship: its row, and the issued-token record a token's event carries. */
function recoveredEntry(json: string, segment: Segment): Entry {
  const { issuedToken, ...row } = parsedOrUnreadable(json) as AuditRow & { issuedToken?: IssuedTokenRecord };
  return { row, json, segment, ...(issuedToken && { record: issuedToken }) };
}

/**
 * A spooled line as the row it holds. One that is not (a disk that garbled it) still goes to the database,
 * which refuses it, and is set aside there with its text, like any refused event: it never stops a start.
 */
function parsedOrUnreadable(json: string): AuditRow {
  try {
    const row = JSON.parse(json) as AuditRow;
    if (typeof row === "object" && row !== null && typeof row.eventId === "string") return row;
  } catch {
    // below
  }
  const eventId = `spool-line:${createHash("sha256").update(json).digest("hex").slice(0, 32)}`;
  return { eventId, at: new Date(), kind: "audit.set_aside", actor: "keyward", contentHash: "", details: { unreadableSpoolLine: storable(json).slice(0, 4096) } };
}

/**
 * The audit pipeline: every event of the proxy (and of token issuance) goes through here, on PostgreSQL,
 * embedded or not.
 *
 * - **Commit point: the spool.** An event is written to this broker's spool (src/audit/spool.ts) in a
 *   group `fdatasync`, and `append` settles once it is on disk: a call waits for its own event's group,
 *   never for the database, and nothing is acknowledged before it is durable. A token's event carries its
 *   issued-token record in its line, so a token is answered once both are on disk, and the database gets
 *   both in one statement (a revocation by jti waits for that: src/revocation/revoke.ts).
 * - **Shipped behind the calls.** Spooled events go to the database in batches of up to 500, in spool
 *   order, through `keyward_audit_append` (migration 0008), which links a whole batch into the hash chain
 *   under one lock of its head: one total order across replicas. A few events linger (LINGER_MS) for
 *   others to share their statement.
 * - **Exactly once.** Every event carries an `eventId`. A batch whose outcome is unknown (the connection
 *   cut around COMMIT) is sent again as it was, and so are the spools of brokers that stopped before
 *   shipping everything (adopted at the next start); the function skips what is already in.
 * - **Unpoisonable.** Agent-controlled text is made storable before it is hashed (`storable`). An event the
 *   database still refuses is set aside in "AuditSetAside" with the reason, and a notice of it goes into
 *   the chain; it never holds up the events behind it.
 * - **Kept outcomes.** `keep` is for events that record what already happened (an upstream's answer, a
 *   refusal already decided): it never fails; an event the disk refuses is held in memory and shipped
 *   all the same. `admit` refuses new calls while more than `maxKept` events wait for the database, so
 *   there is always room for the outcomes of calls already under way.
 */
export class AuditLog {
  /** Events not yet in the database, oldest first. */
  #queue: Entry[] = [];
  #shipping: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;
  #retryMs = RETRY_FIRST_MS;
  /** The last batch failed: the database does not answer, and until it does new calls are refused. */
  #failing = false;
  #closed = false;
  /** Events accepted, and of those the ones done with (shipped, set aside, or refused by the spool): `flush`. */
  #accepted = 0;
  #done = 0;
  /**
   * Each event's identity: this log's own random prefix and a count. Unique across replicas and restarts
   * as a random UUID per event would be, for a fraction of its cost: every event of every call gets one.
   */
  readonly #eventIdPrefix = randomUUID();
  #eventIdsGiven = 0;
  #flushes: { upTo: number; resolve: () => void }[] = [];
  /** Appends waiting for room in the queue (see HIGH_WATER). */
  #waitingForRoom: (() => void)[] = [];

  constructor(
    private readonly db: Pick<Database, "session">,
    private readonly spool: AuditSpool,
    recovered: RecoveredEvents,
    private readonly hooks: {
      /** Told of every event written, with its statement's duration (the metrics: src/ops/metrics.ts). */
      onWritten: (event: AuditRow, seconds: number) => void;
      /** An event refused by the database and set aside (`reason` is the database's message). */
      onSetAside: (event: AuditRow, reason: string) => void;
      /** Writes started failing (err) or work again (null). */
      onHealth: (err: unknown | null) => void;
      maxKept?: number;
    },
  ) {
    this.#adopt(recovered);
    spool.startHeartbeat((found) => this.#adopt(found));
  }

  /** Events of brokers that stopped before shipping them: shipped like this broker's own, once each. */
  #adopt(recovered: RecoveredEvents): void {
    for (const { segment, lines } of recovered) {
      for (const json of lines) {
        this.#accepted++;
        this.#enqueue(recoveredEntry(json, segment));
      }
    }
  }

  /** Events waiting for the database (the /metrics gauge, and `admit`). */
  get backlog(): number {
    return this.#queue.length;
  }

  /**
   * False while the database does not take events (fail closed: a call is not forwarded while its record
   * cannot reach the log), and while so many events wait for it that a new call's outcome might not be kept.
   */
  admit(): boolean {
    return !this.#failing && this.#queue.length < (this.hooks.maxKept ?? DEFAULT_MAX_KEPT);
  }

  /** Whether the disk takes the spool's writes (AuditSpool.writable): appends fail while it does not. */
  spoolWritable(): boolean {
    return this.spool.writable();
  }

  /**
   * Another part of the broker found the database unreachable (the readiness check): new calls are refused
   * from now, as they would be once shipping found it, and the shipper's retry finds out when it is back.
   * So `/readyz` and the proxy agree, even while a few events linger unshipped (LINGER_MS).
   */
  databaseUnreachable(err: unknown): void {
    if (this.#closed || this.#failing) return;
    this.#failing = true;
    this.#releaseWaiting();
    this.hooks.onHealth(err);
    this.#scheduleRetry();
  }

  /**
   * Settles once the event is durable (spooled); fails if it could not be (the caller must not act on it).
   * With `record`, the issued token's record is spooled in the event's line and goes to the database in
   * the event's statement: a token is recorded exactly when its event is, and is valid once both are on disk.
   */
  async append(event: AuditInput, record?: IssuedTokenRecord): Promise<void> {
    if (this.#full()) await this.#room();
    const accepted = this.#accept(event);
    const json = record ? withIssuedToken(accepted.json, record) : accepted.json;
    let segment: Segment;
    try {
      segment = await this.spool.write(json);
    } catch (err) {
      this.#finished(1);
      this.hooks.onHealth(err);
      throw err;
    }
    this.#enqueue({ row: accepted.row, json, segment, ...(record && { record }) });
  }

  /**
   * Records what already happened. Settles once spooled, or, if the disk refuses it, once it is held in
   * memory for the database: never fails. The answer it records is the one the caller then sends.
   */
  async keep(event: AuditInput): Promise<void> {
    if (this.#full()) await this.#room();
    const { row, json } = this.#accept(event);
    const segment = await this.spool.write(json).catch((err: unknown) => {
      this.hooks.onHealth(err);
      return null;
    });
    this.#enqueue({ row, json, segment });
  }

  /**
   * Settles once every event accepted so far is in the database (or set aside), or after `timeoutMs`:
   * true if they all are. Readers of the log on this broker call it first, so that they see their own calls.
   */
  flush(timeoutMs: number): Promise<boolean> {
    const upTo = this.#accepted;
    if (this.#done >= upTo) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#flushes.push({
        upTo,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
  }

  /**
   * Ships what it can and stops. Returns how many events are not in the database: they stay in the spool,
   * shipped by the next broker to start on this data dir (those the disk refused, held in memory, are lost
   * with the process: the caller logs them).
   */
  async close(): Promise<{ unshipped: number; unspooled: AuditRow[] }> {
    this.#closed = true;
    this.#releaseWaiting();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = null;
    await this.#shipping;
    if (this.#queue.length > 0) await this.#ship();
    await this.spool.close(this.#queue.length === 0);
    return { unshipped: this.#queue.length, unspooled: this.#queue.filter((e) => e.segment === null).map((e) => e.row) };
  }

  /** An event stamped and serialised (once there is room for it: `#room`), counted for `flush`. */
  #accept(event: AuditInput): { row: AuditRow; json: string } {
    const serialised = serialisedAuditRow(event, `${this.#eventIdPrefix}.${(this.#eventIdsGiven++).toString(36)}`);
    this.#accepted++;
    return serialised;
  }

  /**
   * Whether the queue is past HIGH_WATER while the database takes events (back-pressure: a database
   * slower than the calls slows the calls). While it does not, nothing waits: new calls are refused by
   * `admit`, and the outcomes of calls already under way are kept. Asked before waiting in `#room`, so
   * that an event with room (nearly every one) pays for no wait.
   */
  #full(): boolean {
    return !this.#failing && !this.#closed && this.#queue.length >= HIGH_WATER;
  }

  async #room(): Promise<void> {
    while (this.#full()) await new Promise<void>((resolve) => this.#waitingForRoom.push(resolve));
  }

  #releaseWaiting(): void {
    const waiting = this.#waitingForRoom;
    this.#waitingForRoom = [];
    for (const resolve of waiting) resolve();
  }

  #enqueue(entry: Entry): void {
    this.#queue.push(entry);
    // A linger under way goes on until the queue is a statement's worth.
    if (this.#lingerTimer && this.#queue.length < LINGER_BELOW) return;
    this.#startShipping();
  }

  /**
   * A few events, while the database answers: they wait LINGER_MS for company. Never once closing: the
   * stop's last shipment goes on to the end, or the rest would stay in a spool that may go with the replica.
   */
  #lingers(): boolean {
    return !this.#failing && !this.#closed && this.#queue.length < LINGER_BELOW;
  }

  /**
   * Starts a run of the shipper (after the linger, if it lingers) unless one is under way, a retry is
   * scheduled or the log is closed. A run always has something to await first (a batch, or the database's
   * answer to a probe), so it cannot finish, and clear `#shipping`, before `#shipping` is set to it.
   */
  #startShipping(lingered = false): void {
    if (this.#shipping || this.#retryTimer || this.#closed) return;
    if (this.#queue.length === 0 && !this.#failing) return;
    if (!lingered && this.#lingers()) {
      this.#lingerTimer ??= setTimeout(() => {
        this.#lingerTimer = null;
        this.#startShipping(true);
      }, LINGER_MS).unref();
      return;
    }
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = null;
    this.#shipping = this.#ship();
  }

  #finished(count: number): void {
    this.#done += count;
    if (this.#flushes.length === 0) return;
    const due = this.#flushes.filter((f) => f.upTo <= this.#done);
    this.#flushes = this.#flushes.filter((f) => f.upTo > this.#done);
    for (const f of due) f.resolve();
  }

  /**
   * Ships the queue in order, a batch at a time, until it is empty or what is left lingers; on a failure,
   * retries later with backoff. Events enqueued during a run find it under way and wait: once it is over
   * (`#shipping` null), it starts the next run itself, so none is left behind one that is over.
   */
  async #ship(): Promise<void> {
    try {
      // A retry can find nothing to write (the readiness check found the database down while nothing
      // waited): the database is asked whether it answers instead, or the log would refuse calls for good.
      if (this.#queue.length === 0) {
        try {
          await queryOnce(this.db, "SELECT 1");
        } catch (err) {
          this.hooks.onHealth(err);
          this.#scheduleRetry();
          return;
        }
        this.#healthy();
      }
      while (this.#queue.length > 0) {
        const batch = this.#queue.slice(0, MAX_BATCH);
        const outcomes = await this.#writeRows(batch);
        const firstFailed = outcomes.findIndex((o) => typeof o === "object");
        const settled = firstFailed === -1 ? batch.length : firstFailed;
        this.#queue.splice(0, settled);
        if (this.#queue.length < HIGH_WATER) this.#releaseWaiting();
        for (let i = 0; i < settled; i++) batch[i]!.segment?.shipped(1);
        this.#finished(settled);
        if (firstFailed !== -1) {
          const { failed } = outcomes[firstFailed] as { failed: unknown };
          this.#failing = true;
          this.#releaseWaiting();
          this.hooks.onHealth(failed);
          this.#scheduleRetry();
          return;
        }
        this.#healthy();
        if (this.#lingers()) break;
      }
    } finally {
      this.#shipping = null;
    }
    // What came in during the run, or was left to linger, gets a run of its own.
    this.#startShipping();
  }

  /** The database took a statement: if writes were failing, they work again. */
  #healthy(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#retryMs = RETRY_FIRST_MS;
    this.hooks.onHealth(null);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    // Jittered, so replicas that lost the same database do not come back in step.
    const delay = jittered(this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#startShipping();
    }, delay);
    this.#retryTimer.unref();
  }

  /**
   * Writes entries (and the token records that go with them) as one statement. Refused by the database,
   * the statement failed as a whole, and one event must not fail the others: each is tried alone, and one
   * refused alone is set aside. Returns each entry's outcome, in order; none throws.
   */
  async #writeRows(entries: Entry[]): Promise<WriteOutcome[]> {
    const startedAt = performance.now();
    try {
      await this.#insert(entries);
    } catch (err) {
      if (!refusedByDatabase(err)) return entries.map(() => ({ failed: err }));
      if (entries.length === 1) {
        return this.#setAside(entries[0]!, err).then(
          (): WriteOutcome[] => ["setAside"],
          (setAsideErr: unknown): WriteOutcome[] => [{ failed: setAsideErr }],
        );
      }
      const outcomes: WriteOutcome[] = [];
      for (const entry of entries) {
        const [outcome] = await this.#writeRows([entry]);
        outcomes.push(outcome!);
        if (typeof outcome === "object") break;
      }
      return outcomes;
    }
    const seconds = (performance.now() - startedAt) / 1000;
    for (const entry of entries) this.hooks.onWritten(entry.row, seconds);
    return entries.map(() => "written");
  }

  async #insert(entries: Entry[]): Promise<void> {
    const records = entries.flatMap((e) => (e.record ? [e.record] : []));
    const rows = batchJsonb(entries.map((e) => e.json));
    if (records.length === 0) await queryOnce(this.db, APPEND, [rows], "keyward_audit_append");
    else await queryOnce(this.db, APPEND_WITH_TOKENS, [rows, JSON.stringify(records)], "keyward_audit_append_tokens");
  }

  /**
   * Keeps the refused event with the reason, and puts a notice of it (storable by construction) in the
   * chain, in one statement: both or neither. A token's record goes in with them.
   */
  async #setAside({ row, record }: Entry, err: unknown): Promise<void> {
    const reason = storable(err instanceof Error ? err.message : String(err)).slice(0, 1000);
    const kept = record ? { ...row, issuedToken: record } : row;
    const asciiJson = JSON.stringify(kept).replace(/[^\x20-\x7e]/g, escapedCodeUnit);
    const notice = serialisedAuditRow(
      { kind: "audit.set_aside", actor: "keyward", requestId: row.requestId, details: { eventId: row.eventId, kind: row.kind, reason } },
      `${row.eventId}:set-aside`,
    );
    const params = [row.eventId, reason, asciiJson, batchJsonOf([notice.json])];
    try {
      await queryOnce(this.db, SET_ASIDE, [...params, JSON.stringify(record ? [record] : [])]);
    } catch (recordErr) {
      // A record the database refuses as well (it holds only what the broker made: not expected) must not
      // hold up the log: the event is set aside without it, the record in its text for the security team.
      if (!record || !refusedByDatabase(recordErr)) throw recordErr;
      await queryOnce(this.db, SET_ASIDE, [...params, "[]"]);
    }
    this.hooks.onSetAside(row, reason);
  }
}
