import { randomUUID } from "node:crypto";
import { closeSync, fdatasync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { processAlive } from "../util/process-alive.js";
import { assertPrivate } from "../util/private-path.js";

const datasync = promisify(fdatasync);

/** A segment is closed and a new one begun past this size, so that shipped events leave the disk soon. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
const OWNER_FILE = "owner.json";
/**
 * The audit chain (database) a spool's events are for (`AuditChainHead.chainId`, migration 0022). Written
 * when the spool is made and kept until it is removed (unlike its owner file): a broker adopts only spools
 * of its own chain, or of none named (written before there was this file).
 */
const CHAIN_FILE = "chain";
/** What `writable` writes to find out whether a disk that refused a group takes writes again: a few groups' worth. */
const PROBE_FILE = "probe";
const PROBE_BYTES = 64 * 1024;
/**
 * A broker's spool directory while it is being made: created under this suffix, its owner file written,
 * then renamed into place. Adopters pass over it (it never holds events).
 */
const STARTING_SUFFIX = ".starting";
/** How often a broker touches its owner file, and looks for spools of brokers that are gone. */
const HEARTBEAT_MS = 5_000;
/**
 * An owner file untouched this long belongs to a broker that is gone, wherever it ran: brokers in other
 * containers sharing the volume have pids this host cannot check.
 */
export const STALE_OWNER_MS = 30_000;

/**
 * One file of a spool. `unshipped` counts its events not yet in the database; once it is closed and that
 * count is zero, the file is deleted.
 */
export class Segment {
  unshipped = 0;
  closed = false;
  constructor(
    readonly path: string,
    private readonly onEmpty: () => void,
  ) {}

  /** Its events reached the database (or were set aside there). */
  shipped(count: number): void {
    this.unshipped -= count;
    this.deleteIfDone();
  }

  close(): void {
    this.closed = true;
    this.deleteIfDone();
  }

  private deleteIfDone(): void {
    if (!this.closed || this.unshipped > 0) return;
    rmSync(this.path, { force: true });
    this.onEmpty();
  }
}

/** Events found in the spool of a broker that stopped before shipping them, in the order it wrote them. */
export type RecoveredEvents = { segment: Segment; lines: string[] }[];

/**
 * The audit pipeline's commit point: an append-only local file per broker, written in groups and
 * `fdatasync`'d once per group. A call waits for its event's group to be on disk (a fraction of a
 * millisecond), not for a database round trip; the events are shipped to the database behind the calls
 * (src/audit/log.ts), and a segment is deleted once all its events are in.
 *
 * Layout: `<root>/<id>/NNNNNN.jsonl`, one directory per running broker (replicas may share a data dir),
 * with `owner.json` naming the host and pid that write it. A directory whose owner is gone (a crash, a
 * SIGKILL, a stop while the database was down) is adopted by the next broker that starts on the same
 * root: renamed into place (one adopter wins), its events shipped again (the database skips those already
 * in, by eventId), then deleted. A line cut short by a crash was never acknowledged (its fdatasync had not
 * returned) and is dropped.
 */
/** The segment being written. */
type OpenSegment = { fd: number; bytes: number; segment: Segment; number: number };

export class AuditSpool {
  #segment: OpenSegment;
  #pending: { line: string; settle: (err: Error | null, segment: Segment | null) => void }[] = [];
  #flushing: Promise<void> | null = null;
  /** Set while the disk refuses groups: from a refused group to the next one written, or the next probe taken (`writable`). */
  #refused = false;
  #closed = false;
  #heartbeat: NodeJS.Timeout | null = null;

  private constructor(
    readonly root: string,
    readonly dir: string,
    private readonly chainId: string,
    private readonly fsyncs: (seconds: number) => void,
  ) {
    this.#segment = this.#open(1);
  }

  /**
   * Keeps this broker's owner file fresh, and hands `adopt` the events of brokers found gone since
   * (a replica that died and was not restarted: another one ships what it left).
   */
  startHeartbeat(adopt: (recovered: RecoveredEvents) => void): void {
    this.#heartbeat = setInterval(() => {
      try {
        const now = new Date();
        utimesSync(join(this.dir, OWNER_FILE), now, now);
        const { recovered } = adoptOrphans(this.root, this.chainId);
        if (recovered.length > 0) adopt(recovered);
      } catch {
        // A full or failing disk shows in the writes themselves; the next beat tries again.
      }
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /**
   * Opens a spool of this broker's own under `root`, for the audit chain `chainId`, and takes over the
   * spools of brokers of that chain that are gone. `foreign`: spools of gone brokers of another chain, left
   * where they are. `onFsync` is told how long each group's fdatasync took (a metric).
   */
  static open(
    root: string,
    chainId: string,
    onFsync: (seconds: number) => void = () => {},
  ): { spool: AuditSpool; recovered: RecoveredEvents; foreign: string[] } {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    // What is adopted here goes into the audit chain as this broker's own: nobody else may have put it there.
    assertPrivate(root, "the audit spool's folder");
    const { recovered, foreign } = adoptOrphans(root, chainId);
    const dir = join(root, randomUUID());
    // Made whole under another name, then renamed into place: a broker starting at the same moment saw
    // the directory before its owner file, or the file still empty, took it for a stopped broker's and
    // adopted it from under this one (whose first write then failed with ENOENT: replicas-load test).
    const starting = `${dir}${STARTING_SUFFIX}`;
    mkdirSync(starting, { mode: 0o700 });
    writeFileSync(join(starting, CHAIN_FILE), chainId, { mode: 0o600 });
    writeFileSync(join(starting, OWNER_FILE), JSON.stringify({ host: hostname(), pid: process.pid }), { mode: 0o600 });
    renameSync(starting, dir);
    syncDir(root);
    return { spool: new AuditSpool(root, dir, chainId, onFsync), recovered, foreign };
  }

  /** Resolves with the segment holding `line` once it is on disk; rejects if it could not be written. */
  write(line: string): Promise<Segment> {
    if (this.#closed) return Promise.reject(new Error("the audit spool is closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ line: `${line}\n`, settle: (err, segment) => (err ? reject(err) : resolve(segment!)) });
      // Started after this turn of the event loop: every call it handled joins the same group (one
      // fdatasync), rather than the first alone and the rest in the next.
      this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
    });
  }

  /** Writes groups until none waits; ends (and says so) in the same step that finds the queue empty. */
  async #flush(): Promise<void> {
    for (;;) {
      if (this.#pending.length === 0) {
        this.#flushing = null;
        return;
      }
      const group = this.#pending.splice(0);
      const current = this.#segment;
      try {
        const bytes = Buffer.from(group.map((p) => p.line).join(""));
        writeWhole(current.fd, bytes);
        const startedAt = performance.now();
        await datasync(current.fd);
        this.fsyncs((performance.now() - startedAt) / 1000);
        current.bytes += bytes.length;
        current.segment.unshipped += group.length;
        this.#refused = false;
        for (const p of group) p.settle(null, current.segment);
      } catch (err) {
        this.#refused = true;
        for (const p of group) p.settle(err as Error, null);
        // What was written of a failed group may be on disk, never acknowledged: cut off, so that the next
        // group (once the disk has room) never continues its last line, and a new file keeps it apart too.
        try {
          ftruncateSync(current.fd, current.bytes);
        } catch {
          // Rotation below keeps it apart, if the disk allows a new file.
        }
        this.#tryRotate();
        continue;
      }
      if (current.bytes >= SEGMENT_BYTES) this.#tryRotate();
    }
  }

  /**
   * Whether the disk takes this spool's writes: true unless the last group was refused, and then only if
   * a probe (a small file written, fdatasync'd and removed beside the segments) is taken now. A broker
   * whose every call fails for a full disk must leave the load balancer's rotation, and come back once the
   * disk has room, whether or not calls reach it meanwhile to find out. A probe taken counts as a write:
   * anyone may ask (`/readyz`), and a probe per check, written and fsync'd on the event loop, would let a
   * burst of checks stall the broker (FLT-58); the next group refused says so again.
   */
  writable(): boolean {
    if (!this.#refused) return true;
    const probe = join(this.dir, PROBE_FILE);
    try {
      const fd = openSync(probe, "w", 0o600);
      try {
        writeWhole(fd, Buffer.alloc(PROBE_BYTES, "\n"));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.#refused = false;
      return true;
    } catch {
      return false;
    } finally {
      rmSync(probe, { force: true });
    }
  }

  #open(number: number): OpenSegment {
    const path = join(this.dir, `${String(number).padStart(6, "0")}.jsonl`);
    const fd = openSync(path, "a", 0o600);
    syncDir(this.dir);
    return { fd, bytes: 0, number, segment: new Segment(path, () => {}) };
  }

  /** A new segment; if the disk refuses one, writing goes on in the old (the next write tells). */
  #tryRotate(): void {
    const old = this.#segment;
    try {
      this.#segment = this.#open(old.number + 1);
    } catch {
      return;
    }
    closeSync(old.fd);
    old.segment.close();
  }

  /**
   * Stops writing. With everything shipped, the broker's directory is removed; otherwise it is left for
   * the next broker to adopt (its owner file removed, so that even one in this same process may).
   */
  async close(everythingShipped: boolean): Promise<void> {
    this.#closed = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    await this.#flushing;
    closeSync(this.#segment.fd);
    if (everythingShipped) rmSync(this.dir, { recursive: true, force: true });
    else rmSync(join(this.dir, OWNER_FILE), { force: true });
  }
}

/** Writes every byte: a write may take fewer than it was given (a signal, a nearly full disk). */
function writeWhole(fd: number, bytes: Buffer): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A spool directory whose writer is gone: no owner file (it stopped and left it), an owner file not
 * touched for STALE_OWNER_MS (its heartbeat stopped, on any host), or an owner pid that no longer runs on
 * this host (found at once after a crash). An adopted directory whose adopter is gone likewise.
 */
function orphaned(root: string, name: string): boolean {
  const adoptedBy = /\.adopted-([^-]+)-(\d+)-/.exec(name);
  if (adoptedBy) {
    const [, host, pid] = adoptedBy;
    if (host === safeHostname() && Number(pid) === process.pid) return false;
    const stale = Date.now() - statSync(join(root, name)).mtimeMs > STALE_OWNER_MS;
    return stale || (host === safeHostname() && !processAlive(Number(pid)));
  }
  const ownerFile = join(root, name, OWNER_FILE);
  let owner: { host?: unknown; pid?: unknown };
  try {
    owner = JSON.parse(readFileSync(ownerFile, "utf8")) as typeof owner;
    if (Date.now() - statSync(ownerFile).mtimeMs > STALE_OWNER_MS) return true;
  } catch (err) {
    // Missing: its broker stopped and left it. Unreadable (cut short while being written): the same.
    return (err as NodeJS.ErrnoException).code === "ENOENT" || err instanceof SyntaxError;
  }
  if (owner.host !== hostname() || owner.pid === process.pid) return false;
  return typeof owner.pid === "number" && !processAlive(owner.pid);
}

/**
 * A directory left half-made by a broker that died while starting (it holds at most its owner file, no
 * events): removed once it is as old as a stale owner file, so that a broker still making it keeps it.
 */
function removeIfAbandoned(path: string): void {
  try {
    if (Date.now() - statSync(path).mtimeMs > STALE_OWNER_MS) rmSync(path, { recursive: true, force: true });
  } catch {
    // Renamed into place (or removed) since it was listed.
  }
}

/** This host's name as it can stand in a directory name. */
const safeHostname = () => hostname().replace(/[^A-Za-z0-9.]/g, "_");

/** The chain a spool directory names, or null if it names none (made by an older broker). */
function chainOf(dir: string): string | null {
  try {
    return readFileSync(join(dir, CHAIN_FILE), "utf8");
  } catch {
    return null;
  }
}

function adoptOrphans(root: string, chainId: string): { recovered: RecoveredEvents; foreign: string[] } {
  const recovered: RecoveredEvents = [];
  const foreign: string[] = [];
  for (const name of readdirSync(root).sort()) {
    if (name.endsWith(STARTING_SUFFIX)) {
      removeIfAbandoned(join(root, name));
      continue;
    }
    if (!orphaned(root, name)) continue;
    // Another database's events (this data dir used with another DATABASE_URL or schema): shipped here they
    // would join the wrong chain and be missing from their own. Left for a broker of that database.
    const chain = chainOf(join(root, name));
    if (chain !== null && chain !== chainId) {
      foreign.push(join(root, name));
      continue;
    }
    // Atomic: of two brokers starting at once, one takes it.
    const taken = join(root, `${name.split(".adopted-")[0]}.adopted-${safeHostname()}-${process.pid}-${randomUUID().slice(0, 8)}`);
    try {
      renameSync(join(root, name), taken);
    } catch {
      continue;
    }
    const files = readdirSync(taken).filter((f) => f.endsWith(".jsonl")).sort();
    let remaining = files.length;
    const removeDir = () => {
      if (--remaining === 0) rmSync(taken, { recursive: true, force: true });
    };
    if (files.length === 0) rmSync(taken, { recursive: true, force: true });
    for (const file of files) {
      const path = join(taken, file);
      const text = readFileSync(path, "utf8");
      // The part after the last newline was never acknowledged.
      const lines = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l.length > 0);
      const segment = new Segment(path, removeDir);
      segment.unshipped = lines.length;
      recovered.push({ segment, lines });
    }
  }
  // Never written again: each is deleted once its events are shipped (at once if it has none).
  for (const { segment } of recovered) segment.close();
  return { recovered, foreign };
}
