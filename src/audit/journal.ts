import { randomUUID } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile, type FileHandle } from "node:fs/promises";
import { join, resolve } from "node:path";
import { queryOnce, type Database } from "../db/database.js";
import { auditRow, type AuditInput } from "./audit.js";
import { insertAuditRows, type AuditLog, type AuditRow } from "./batch.js";

export type AuditJournalOptions = {
  /** Holds one subdirectory per running broker (several may share it), on a local disk. */
  dir: string;
  /**
   * Refuse new events once the oldest event not yet in the database has waited this long: the database
   * is gone or refusing, and a broker that keeps forwarding would build an audit trail nobody can read.
   */
  maxLagMs: number;
  /** Refuse new events once this many are waiting for the database (bounds memory). */
  maxBacklog?: number;
  /** A segment file is closed, and deleted once shipped, after this many bytes. */
  segmentBytes?: number;
  /** How long the shipper waits for more events before sending a partial batch. */
  lingerMs?: number;
  /** Told of every event that reached the database, with its statement's duration (the metrics). */
  onShipped?: (event: AuditInput, seconds: number) => void;
  /** Shipping failed (first failure of a streak), or works again. */
  onShippingFailed?: (err: unknown) => void;
  onShippingResumed?: () => void;
};

/** A journal left by a broker that stopped before its events were all in the database, replayed at start. */
export type ReplayedJournal = { journalId: string; events: number };

/** `line`: the event as journaled, {"seq":…,…row}, which is also what the shipper sends. */
type Entry = { seq: number; row: AuditRow; line: string; appendedAt: number };
type Pending = { entry: Entry; written: () => void; failed: (err: unknown) => void };

const SHIP_BATCH = 1_000;
const SEGMENT_SUFFIX = ".jsonl";
const LOCK_FILE = "LOCK";
const CLOSE_SHIPPING_DEADLINE_MS = 5_000;
const SETTLE_TIMEOUT_MS = 2_000;

/** Journals this process holds, so that a second broker in the same process does not take one over. */
const heldHere = new Set<string>();

/**
 * The audit log's write-ahead journal: the proxy's events are appended to a local file, and each
 * caller's promise settles once the write holding its event has been fdatasync'd (group commit, like
 * AuditBatcher's, but against the local disk instead of a database round trip and the chain lock). A
 * background shipper then inserts them into the database in large batches, in order, moving this
 * journal's cursor (AuditJournalCursor) in the same statement. A broker that crashes, or stops while
 * the database is unreachable, leaves its journal behind; the next broker to start on the same
 * directory replays it, skipping exactly what the cursor says is already in. So nothing acknowledged
 * is lost, nothing is inserted twice, and a call is still never forwarded before its decision is durable.
 *
 * What it trades: other replicas and `keyward audit` see an event once it is shipped (milliseconds,
 * unless the database is down), and this broker's own audit reads wait for its journal to be shipped
 * (settled()). It fails closed: once events wait longer than `maxLagMs` for the database, new events
 * are refused, and the proxy refuses the calls they describe.
 */
export class AuditJournal implements AuditLog {
  #lastSeq = 0;
  #shippedSeq = 0;
  #toWrite: Pending[] = [];
  #unshipped: Entry[] = [];
  #segments: { path: string; lastSeq: number }[] = [];
  #segment!: FileHandle;
  #segmentSize = 0;
  #writer: Promise<void> | null = null;
  #shipper: Promise<void> | null = null;
  #shippingFailed = false;
  #broken: Error | null = null;
  #closing = false;
  #closeDeadline = Infinity;
  #waiters: { seq: number; done: () => void }[] = [];

  private constructor(
    private readonly db: Pick<Database, "session">,
    readonly journalId: string,
    private readonly instanceDir: string,
    private readonly options: AuditJournalOptions,
    /** The journals of stopped brokers this one replayed as it opened. */
    readonly replayed: ReplayedJournal[],
  ) {}

  /** Replays what stopped brokers left in `dir`, then starts this broker's own journal there. */
  static async open(db: Pick<Database, "session">, given: AuditJournalOptions): Promise<AuditJournal> {
    // One spelling of each path, so that the locks this process holds are recognised whatever it was given.
    const options = { ...given, dir: resolve(given.dir) };
    const replayed = await replayStoppedJournals(db, options.dir);
    const journalId = randomUUID();
    const instanceDir = join(options.dir, journalId);
    await mkdir(instanceDir, { mode: 0o700 });
    if (!(await takeLock(instanceDir))) throw new Error(`audit journal ${instanceDir} is locked by another process`);
    const journal = new AuditJournal(db, journalId, instanceDir, options, replayed);
    await journal.#openSegment(1);
    await syncDirectory(options.dir);
    return journal;
  }

  append(event: AuditInput): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise((written, failed) => {
      const seq = ++this.#lastSeq;
      const row = auditRow(event);
      this.#toWrite.push({ entry: { seq, row, line: JSON.stringify({ seq, ...row }), appendedAt: Date.now() }, written, failed });
      this.#writer ??= this.#writeAll();
    });
  }

  /** While the database refuses them, waits at most SETTLE_TIMEOUT_MS: the read then shows what is there. */
  settled(): Promise<void> {
    if (this.#shippedSeq >= this.#lastSeq || this.#broken) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, SETTLE_TIMEOUT_MS);
      this.#waiters.push({ seq: this.#lastSeq, done: () => (clearTimeout(timer), resolve()) });
    });
  }

  /** Events appended but not yet in the database. */
  #backlog(): number {
    return this.#toWrite.length + this.#unshipped.length;
  }

  /**
   * Refuses new events, waits for the ones in hand to be written and (for up to a few seconds if the
   * database is failing) shipped. A journal with nothing left is removed; otherwise it stays for the
   * next start to replay.
   */
  async close(): Promise<{ leftInJournal: number }> {
    this.#closing = true;
    this.#closeDeadline = Date.now() + CLOSE_SHIPPING_DEADLINE_MS;
    while (this.#writer || this.#shipper) await Promise.all([this.#writer, this.#shipper]);
    await this.#segment.close();
    const leftInJournal = this.#unshipped.length;
    if (leftInJournal === 0 && !this.#broken) {
      await rm(this.instanceDir, { recursive: true, force: true });
      heldHere.delete(this.instanceDir);
      await deleteCursor(this.db, this.journalId).catch(() => {});
    } else {
      await releaseLock(this.instanceDir);
    }
    this.#release(Infinity);
    return { leftInJournal };
  }

  #refusal(): Error | null {
    if (this.#broken) return this.#broken;
    if (this.#closing) return new Error("the audit journal is closed");
    const oldest = this.#unshipped[0];
    if (oldest && Date.now() - oldest.appendedAt > this.options.maxLagMs) {
      return new Error(`audit events have not reached the database for ${Date.now() - oldest.appendedAt} ms`);
    }
    const backlog = this.#backlog();
    if (backlog >= (this.options.maxBacklog ?? 100_000)) return new Error(`${backlog} audit events are waiting for the database`);
    return null;
  }

  async #writeAll(): Promise<void> {
    while (this.#toWrite.length > 0) {
      const batch = this.#toWrite.splice(0, this.#toWrite.length);
      const text = batch.map((p) => p.entry.line + "\n").join("");
      try {
        await this.#segment.appendFile(text);
        await this.#segment.datasync();
      } catch (err) {
        // Whether any of it is on disk is unknown: nothing more is accepted, and none of it acknowledged.
        this.#broken = new Error("the audit journal could not be written", { cause: err });
        for (const p of [...batch, ...this.#toWrite.splice(0)]) p.failed(this.#broken);
        this.#release(Infinity);
        break;
      }
      this.#segmentSize += Buffer.byteLength(text);
      this.#segments.at(-1)!.lastSeq = batch.at(-1)!.entry.seq;
      for (const p of batch) {
        this.#unshipped.push(p.entry);
        p.written();
      }
      this.#shipper ??= this.#shipAll();
      if (this.#segmentSize >= (this.options.segmentBytes ?? 16 * 1024 * 1024)) {
        try {
          await this.#segment.close();
          await this.#openSegment(batch.at(-1)!.entry.seq + 1);
        } catch (err) {
          this.#broken = new Error("the audit journal could not start a new segment", { cause: err });
          for (const p of this.#toWrite.splice(0)) p.failed(this.#broken);
          this.#release(Infinity);
        }
      }
    }
    this.#writer = null;
  }

  async #shipAll(): Promise<void> {
    let backoffMs = 50;
    while (this.#unshipped.length > 0) {
      if (this.#unshipped.length < SHIP_BATCH && !this.#closing) await sleep(this.options.lingerMs ?? 5);
      const batch = this.#unshipped.slice(0, SHIP_BATCH);
      const shippedSeq = batch.at(-1)!.seq;
      const startedAt = performance.now();
      try {
        await insertAuditRows(this.db, linesJson(batch), { id: this.journalId, shippedSeq });
      } catch (err) {
        if (!this.#shippingFailed) this.options.onShippingFailed?.(err);
        this.#shippingFailed = true;
        if (Date.now() >= this.#closeDeadline) break;
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 1_000);
        continue;
      }
      if (this.#shippingFailed) this.options.onShippingResumed?.();
      this.#shippingFailed = false;
      backoffMs = 50;
      this.#unshipped.splice(0, batch.length);
      this.#shippedSeq = shippedSeq;
      const seconds = (performance.now() - startedAt) / 1000;
      for (const e of batch) this.options.onShipped?.(e.row, seconds);
      this.#release(shippedSeq);
      await this.#dropShippedSegments();
    }
    this.#shipper = null;
  }

  /** Segments are named by the first seq they hold, so that their names sort in the journal's order. */
  async #openSegment(firstSeq: number): Promise<void> {
    const path = join(this.instanceDir, String(firstSeq).padStart(16, "0") + SEGMENT_SUFFIX);
    this.#segment = await open(path, "a", 0o600);
    this.#segments.push({ path, lastSeq: firstSeq - 1 });
    this.#segmentSize = 0;
    // The new file's name must be as durable as what is written into it.
    await syncDirectory(this.instanceDir);
  }

  async #dropShippedSegments(): Promise<void> {
    while (this.#segments.length > 1 && this.#segments[0]!.lastSeq <= this.#shippedSeq) {
      // One left behind is harmless: a replay skips what the cursor says is shipped.
      await unlink(this.#segments.shift()!.path).catch(() => {});
    }
  }

  #release(throughSeq: number): void {
    const waiting = this.#waiters;
    this.#waiters = waiting.filter((w) => w.seq > throughSeq);
    for (const w of waiting) if (w.seq <= throughSeq) w.done();
  }
}

/** Journal lines carry their seq, which orders them as insertAuditRows needs: they go as they are. */
const linesJson = (entries: readonly { line: string }[]) => `[${entries.map((e) => e.line).join(",")}]`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Whether the process that wrote a lock still runs (the same process counts only if it holds it). */
async function lockHolderAlive(pid: number, instanceDir: string): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return heldHere.has(instanceDir);
  try {
    process.kill(pid, 0);
  } catch (err) {
    return errorCode(err) === "EPERM";
  }
  // A killed broker whose parent died with it can stay a zombie (state Z) until someone reaps it.
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat === null || stat[stat.lastIndexOf(")") + 2] !== "Z";
}

/**
 * Takes a journal's lock, a file holding the owner's pid, created whole by link() so it is never seen
 * empty. A lock whose owner is gone is renamed away first; only one of several brokers racing for it
 * can rename it, and the others then find the winner's lock.
 */
async function takeLock(instanceDir: string): Promise<boolean> {
  const lock = join(instanceDir, LOCK_FILE);
  const draft = join(instanceDir, `${LOCK_FILE}.${randomUUID()}`);
  await writeFile(draft, String(process.pid), { mode: 0o600 });
  try {
    for (;;) {
      try {
        await link(draft, lock);
        heldHere.add(instanceDir);
        return true;
      } catch (err) {
        if (errorCode(err) !== "EEXIST") throw err;
      }
      const holder = Number(await readFile(lock, "utf8").catch(() => ""));
      if (await lockHolderAlive(holder, instanceDir)) return false;
      await rename(lock, `${lock}.stale.${randomUUID()}`).catch((err: unknown) => {
        if (errorCode(err) !== "ENOENT") throw err;
      });
    }
  } finally {
    await unlink(draft);
    for (const name of await readdir(instanceDir)) if (name.startsWith(`${LOCK_FILE}.stale.`)) await rm(join(instanceDir, name), { force: true });
  }
}

async function releaseLock(instanceDir: string): Promise<void> {
  heldHere.delete(instanceDir);
  await unlink(join(instanceDir, LOCK_FILE)).catch(() => {});
}

/**
 * Inserts the events that brokers which are no longer running left in their journals under `dir` (a
 * crash, or a stop while the database refused), each journal from where its cursor says it got to, and
 * removes those journals. Running brokers' journals are left alone.
 */
export async function replayStoppedJournals(db: Pick<Database, "session">, dir: string): Promise<ReplayedJournal[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const replayed: ReplayedJournal[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !UUID.test(entry.name)) continue;
    const instanceDir = resolve(dir, entry.name);
    if (!(await takeLock(instanceDir))) continue;
    try {
      replayed.push({ journalId: entry.name, events: await replayJournal(db, entry.name, instanceDir) });
    } catch (err) {
      await releaseLock(instanceDir);
      throw err;
    }
  }
  return replayed;
}

/**
 * A stopped broker's events in order, as journaled (only their seq is read: the lines go to the
 * database as they are). A torn last line is a write that was never acknowledged.
 */
async function readJournal(instanceDir: string): Promise<Pick<Entry, "seq" | "line">[]> {
  const segments = (await readdir(instanceDir)).filter((name) => name.endsWith(SEGMENT_SUFFIX)).sort();
  const entries: Pick<Entry, "seq" | "line">[] = [];
  for (const [index, name] of segments.entries()) {
    const lines = (await readFile(join(instanceDir, name), "utf8")).split("\n");
    const complete = lines.slice(0, -1);
    const tail = lines.at(-1)!;
    if (tail !== "" && index !== segments.length - 1) throw damaged(instanceDir, name, lines.length);
    for (const [n, line] of complete.entries()) {
      let seq: unknown;
      try {
        seq = (JSON.parse(line) as { seq?: unknown }).seq;
      } catch {
        throw damaged(instanceDir, name, n + 1);
      }
      if (!Number.isSafeInteger(seq) || (entries.length > 0 && seq !== entries.at(-1)!.seq + 1)) throw damaged(instanceDir, name, n + 1);
      entries.push({ seq: seq as number, line });
    }
  }
  return entries;
}

const damaged = (instanceDir: string, file: string, line: number) =>
  new Error(`audit journal ${join(instanceDir, file)} is damaged at line ${line}: the broker will not start until it is repaired or moved aside`);

async function replayJournal(db: Pick<Database, "session">, journalId: string, instanceDir: string): Promise<number> {
  const shippedSeq = await shippedSeqOf(db, journalId);
  const pending = (await readJournal(instanceDir)).filter((e) => e.seq > shippedSeq);
  for (let i = 0; i < pending.length; i += SHIP_BATCH) {
    const batch = pending.slice(i, i + SHIP_BATCH);
    await insertAuditRows(db, linesJson(batch), { id: journalId, shippedSeq: batch.at(-1)!.seq });
  }
  await rm(instanceDir, { recursive: true, force: true });
  heldHere.delete(instanceDir);
  await deleteCursor(db, journalId);
  return pending.length;
}

async function shippedSeqOf(db: Pick<Database, "session">, journalId: string): Promise<number> {
  const rows = await queryOnce<{ shippedSeq: string }>(db, `SELECT "shippedSeq" FROM "AuditJournalCursor" WHERE "journalId" = $1`, [journalId]);
  return rows.length === 0 ? 0 : Number(rows[0]!.shippedSeq);
}

async function deleteCursor(db: Pick<Database, "session">, journalId: string): Promise<void> {
  await queryOnce(db, `DELETE FROM "AuditJournalCursor" WHERE "journalId" = $1`, [journalId]);
}
