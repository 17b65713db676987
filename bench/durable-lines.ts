/**
 * The audit guarantee alone, for the design floors (bench/floor-process.ts, bench/token-floor-process.ts):
 * one JSON line per event, hash-chained (sha256), appended to a spool file with every event of the same
 * event-loop turn and `fdatasync`'d once per group, as the broker's spool does (src/audit/spool.ts).
 */
import { createHash } from "node:crypto";
import { fdatasync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const datasync = promisify(fdatasync);

export type DurableLines = {
  /** Settles once the event is on disk, in a group with the other events of its turn of the event loop. */
  durable(event: Record<string, unknown>): Promise<void>;
  /** Removes the spool. */
  remove(): void;
};

export function openDurableLines(): DurableLines {
  const spoolDir = mkdtempSync(join(tmpdir(), "keyward-floor-"));
  const spool = openSync(join(spoolDir, "events.jsonl"), "a", 0o600);
  let chainHead = "0".repeat(64);
  let pending: { line: string; done: () => void }[] = [];
  let flushing = false;

  async function flush(): Promise<void> {
    while (pending.length > 0) {
      const group = pending;
      pending = [];
      let text = "";
      for (const { line } of group) {
        chainHead = createHash("sha256").update(`${chainHead}|${line}`).digest("hex");
        text += `${line} ${chainHead}\n`;
      }
      writeSync(spool, text);
      await datasync(spool);
      for (const { done } of group) done();
    }
    flushing = false;
  }

  return {
    durable: (event) =>
      new Promise((done) => {
        pending.push({ line: JSON.stringify(event), done });
        if (flushing) return;
        flushing = true;
        setImmediate(() => void flush());
      }),
    remove: () => rmSync(spoolDir, { recursive: true, force: true }),
  };
}
