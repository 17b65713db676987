import { createHash, randomBytes } from "node:crypto";
import { linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { EmbeddedDatabaseError } from "./errors.js";
import { processAlive, processStartIdentity } from "../util/process-alive.js";

/**
 * One broker per data dir: a second one would start a second server on the same files. The lock names the
 * holder's pid and (on Linux) its start identity, so that a lock left by a broker that died is taken over
 * even when its pid has since gone to another process, as after a reboot. Returns its release.
 *
 * Brokers started together on a stale lock all find it stale. Removing it by name after reading it would
 * let a late one remove the lock a faster one has just taken, then take its own and stop the first one's
 * PostgreSQL as a stale server. So a stale lock is removed only by the holder of a lock named after its
 * content (taken the same way, stale or not): while that is held nobody else removes the stale lock, and
 * nobody can create a lock beside it, so a stale lock read again under it is still the very one judged.
 */
export function takeDataDirLock(path: string): () => void {
  const taken = tryLock(path);
  if (typeof taken === "function") return taken;
  if (taken.holder === undefined) throw new EmbeddedDatabaseError(`could not lock the data dir ${dirname(path)}`);
  throw new EmbeddedDatabaseError(
    `another Keyward (pid ${taken.holder}) is using the data dir ${dirname(path)}; stop it first, or give this one its own KEYWARD_DATA_DIR`,
  );
}

function tryLock(path: string): (() => void) | { holder?: number } {
  const identity = processStartIdentity(process.pid);
  const content = identity ? `${process.pid}\n${identity}\n` : String(process.pid);
  for (let attempt = 0; attempt < 50; attempt++) {
    if (createWithContent(path, content)) {
      return () => {
        try {
          if (readFileSync(path, "utf8") === content) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    }
    const found = readIfPresent(path);
    if (found === undefined) continue; // removed since: try again
    const holder = liveHolder(found);
    if (holder !== undefined) return { holder };
    const breaking = tryLock(`${path}.break-${createHash("sha256").update(found).digest("hex").slice(0, 16)}`);
    if (typeof breaking !== "function") {
      // Another broker is removing this stale lock right now (for microseconds): see what it leaves.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    try {
      if (readIfPresent(path) === found) unlinkSync(path); // left by a broker that died
    } finally {
      breaking();
    }
  }
  return {};
}

/**
 * Creates `path` with its content in one step, or returns false when it exists: a file linked into place
 * is never seen empty or half-written, which another broker would take for a stale lock.
 */
function createWithContent(path: string, content: string): boolean {
  const draft = `${path}.${process.pid}.${randomBytes(6).toString("hex")}`;
  writeFileSync(draft, content, { mode: 0o600, flag: "wx" });
  try {
    linkSync(draft, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return false;
  } finally {
    unlinkSync(draft);
  }
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** The pid a lock's content names while that process still runs (the same process, where its start is known). */
function liveHolder(content: string): number | undefined {
  const [first = "", heldBy] = content.split("\n");
  const holder = Number(first);
  if (!Number.isInteger(holder) || holder <= 0 || holder === process.pid || !processAlive(holder)) return undefined;
  // A lock that names the holder's start (this version's) is the holder's only while that process is the same one.
  if (heldBy) {
    const now = processStartIdentity(holder);
    if (now !== undefined && now !== heldBy) return undefined;
  }
  return holder;
}
