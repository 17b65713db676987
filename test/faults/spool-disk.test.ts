import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { title } from "../security/cases.js";

/**
 * A full disk, as the spool meets it: a write that gets part of its bytes down and then ENOSPC, and (a
 * disk out of inodes, or of blocks for a new directory entry) no new file. Everything else is the real fs.
 */
const disk = vi.hoisted(() => ({ full: false, probesOpened: 0 }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  const writeSync = ((fd: number, buffer: Buffer, offset?: number, ...rest: unknown[]) => {
    if (!disk.full || !Buffer.isBuffer(buffer)) return (fs.writeSync as (...a: unknown[]) => number)(fd, buffer, offset, ...rest);
    const from = offset ?? 0;
    if (from > 0) throw enospc(); // what fitted went down on the first try
    return fs.writeSync(fd, buffer, from, Math.max(1, Math.floor((buffer.length - from) / 2)));
  }) as typeof fs.writeSync;
  const openSync = ((path: string, ...rest: unknown[]) => {
    if (disk.full && String(path).endsWith(".jsonl")) throw enospc();
    if (String(path).endsWith("/probe")) disk.probesOpened++;
    return (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
  }) as typeof fs.openSync;
  return { ...fs, default: { ...fs, writeSync, openSync }, writeSync, openSync };
});

describe("faults: the audit spool's disk full", () => {
  const root = mkdtempSync(join(tmpdir(), "keyward-spool-full-"));
  let AuditSpool: typeof import("../../src/audit/spool.js").AuditSpool;
  beforeAll(async () => {
    // Test files share their worker's modules (vitest.config.ts: isolate false): the spool is loaded
    // afresh so that it imports the node:fs mocked above.
    vi.resetModules();
    ({ AuditSpool } = await import("../../src/audit/spool.js"));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    // The next test file in this worker gets the real fs.
    vi.doUnmock("node:fs");
    vi.resetModules();
  });

  it(title("FLT-17"), async () => {
    const { spool } = AuditSpool.open(root, "test-chain");
    await spool.write('{"event":"a"}');
    disk.full = true;
    await expect(spool.write('{"event":"refused-while-full"}')).rejects.toThrow(/ENOSPC/);
    disk.full = false;
    await spool.write('{"event":"c"}');

    // The broker dies here: what the next one reads back is every acknowledged line, whole.
    const [segment] = readdirSync(spool.dir).filter((f) => f.endsWith(".jsonl"));
    const text = readFileSync(join(spool.dir, segment!), "utf8");
    const lines = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter(Boolean);
    expect(lines).toEqual(['{"event":"a"}', '{"event":"c"}']);
    await spool.close(true);
  });

  it(title("FLT-18") + ": the spool says whether the disk takes its writes, probing it after a refusal", async () => {
    const { spool } = AuditSpool.open(root, "test-chain");
    await spool.write('{"event":"a"}');
    expect(spool.writable()).toBe(true);
    disk.full = true;
    await expect(spool.write('{"event":"refused-while-full"}')).rejects.toThrow(/ENOSPC/);
    expect(spool.writable()).toBe(false);
    // Room again: the probe finds it before any call has written (a balancer sends none to a broker out of rotation).
    disk.full = false;
    expect(spool.writable()).toBe(true);
    expect(readdirSync(spool.dir).filter((f) => !f.endsWith(".jsonl") && f !== "owner.json" && f !== "chain")).toEqual([]);
    await spool.write('{"event":"c"}');
    expect(spool.writable()).toBe(true);
    await spool.close(true);
  });

  it(title("FLT-58"), async () => {
    const { spool } = AuditSpool.open(root, "test-chain");
    disk.full = true;
    await expect(spool.write('{"event":"refused-while-full"}')).rejects.toThrow(/ENOSPC/);
    disk.full = false;
    // Out of rotation, no call writes: only the balancer's checks (or anyone's) ask, many at once.
    const before = disk.probesOpened;
    for (let i = 0; i < 100; i++) expect(spool.writable()).toBe(true);
    expect(disk.probesOpened - before).toBe(1);
    await spool.close(true);
  });
});
