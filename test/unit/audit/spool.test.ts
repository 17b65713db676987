import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditSpool, STALE_OWNER_MS } from "../../../src/audit/spool.js";

/** A pid that ran on this host and is gone. */
const deadPid = () => spawnSync(process.execPath, ["-e", "0"]).pid!;

describe("the audit spool", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "keyward-spool-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const segmentsOf = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".jsonl"));

  it("acknowledges a line once it is on disk, and deletes a segment's file once its events are shipped and it is closed", async () => {
    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    expect(recovered).toEqual([]);
    const segments = await Promise.all(["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"].map((l) => spool.write(l)));
    const [file] = segmentsOf(spool.dir);
    expect(readFileSync(join(spool.dir, file!), "utf8")).toBe('{"a":1}\n{"a":2}\n{"a":3}\n');
    expect(new Set(segments).size).toBe(1);
    segments[0]!.shipped(3);
    // Still being written: kept.
    expect(segmentsOf(spool.dir)).toHaveLength(1);
    await spool.close(true);
    expect(existsSync(spool.dir)).toBe(false);
  });

  it("a broker that stopped with events unshipped leaves them to the next one, which ships them and removes the files", async () => {
    const first = AuditSpool.open(root, "test-chain");
    const segment = await first.spool.write('{"n":1}');
    await first.spool.write('{"n":2}');
    segment.shipped(1);
    await first.spool.close(false);

    const second = AuditSpool.open(root, "test-chain");
    // Both lines come back (the shipped one is skipped by the database by its eventId).
    expect(second.recovered.map((r) => r.lines)).toEqual([['{"n":1}', '{"n":2}']]);
    const adopted = second.recovered[0]!.segment;
    expect(existsSync(adopted.path)).toBe(true);
    adopted.shipped(2);
    expect(existsSync(adopted.path)).toBe(false);
    // The adopted directory is gone with its last file; only the second broker's own remains.
    expect(readdirSync(root)).toEqual([second.spool.dir.split("/").pop()]);
    await second.spool.close(true);
  });

  it("adopts the spool of a killed broker (its pid gone), drops a line cut short by the crash, and leaves a live broker's alone", async () => {
    const killed = join(root, "killed");
    const alive = join(root, "alive");
    for (const [dir, pid] of [[killed, deadPid()], [alive, process.ppid]] as const) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      writeFileSync(join(dir, "owner.json"), JSON.stringify({ host: hostname(), pid }));
      writeFileSync(join(dir, "000001.jsonl"), '{"n":1}\n{"n":2}\n');
    }
    appendFileSync(join(killed, "000001.jsonl"), '{"n":3,"cut sho');
    writeFileSync(join(killed, "000002.jsonl"), '{"n":4}\n');
    // Another host's broker sharing the directory is not judged by pid.
    const elsewhere = join(root, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "owner.json"), JSON.stringify({ host: "some-other-host", pid: deadPid() }));

    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    expect(recovered.map((r) => r.lines)).toEqual([['{"n":1}', '{"n":2}'], ['{"n":4}']]);
    expect(existsSync(alive)).toBe(true);
    expect(existsSync(elsewhere)).toBe(true);
    expect(existsSync(killed)).toBe(false);
    // A second broker starting now finds nothing more to adopt: the first took it.
    const other = AuditSpool.open(root, "test-chain");
    expect(other.recovered).toEqual([]);
    await other.spool.close(true);
    await spool.close(true);
  });

  it("an adopter that dies before shipping leaves the adopted spool to the next broker", async () => {
    const dir = join(root, `abc.adopted-${deadPid()}-1234abcd`);
    mkdirSync(dir);
    writeFileSync(join(dir, "000001.jsonl"), '{"n":1}\n');
    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    expect(recovered.map((r) => r.lines)).toEqual([['{"n":1}']]);
    recovered[0]!.segment.shipped(1);
    expect(readdirSync(root)).toEqual([spool.dir.split("/").pop()]);
    await spool.close(true);
  });

  it("a spool whose owner stopped touching it (another container sharing the volume) is adopted once stale; a fresh one is not", async () => {
    const stale = join(root, "stale");
    const fresh = join(root, "fresh");
    for (const dir of [stale, fresh]) {
      mkdirSync(dir);
      writeFileSync(join(dir, "owner.json"), JSON.stringify({ host: "another-container", pid: 1 }));
      writeFileSync(join(dir, "000001.jsonl"), '{"n":1}\n');
    }
    const past = new Date(Date.now() - STALE_OWNER_MS - 1_000);
    utimesSync(join(stale, "owner.json"), past, past);
    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    expect(recovered.map((r) => r.lines)).toEqual([['{"n":1}']]);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    await spool.close(true);
  });

  it("a broker's directory is never seen without its owner file: one still being made is not adopted, one left half-made is removed once stale", async () => {
    // Another broker in the middle of starting: its directory exists, its owner file does not yet.
    const starting = join(root, "8f7e3b1c-starting-now.starting");
    const abandoned = join(root, "0a1b2c3d-died-starting.starting");
    for (const dir of [starting, abandoned]) mkdirSync(dir);
    writeFileSync(join(abandoned, "owner.json"), "");
    const past = new Date(Date.now() - STALE_OWNER_MS - 1_000);
    utimesSync(abandoned, past, past);
    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    expect(recovered).toEqual([]);
    expect(existsSync(starting)).toBe(true);
    expect(existsSync(abandoned)).toBe(false);
    // This broker's own directory went into place whole, owner file included.
    expect(JSON.parse(readFileSync(join(spool.dir, "owner.json"), "utf8"))).toEqual({ host: hostname(), pid: process.pid });
    expect(readdirSync(root).filter((name) => name.endsWith(".starting"))).toEqual([starting.split("/").pop()]);
    await spool.close(true);
  });

  it("brokers opening spools on one root at the same moment each keep their own (none adopts another's)", async () => {
    // Child processes, each opening a spool and writing one line while the others open theirs. The race
    // is a few microseconds wide: before the fix this failed in about 1 run in 4 (the test above, always).
    const script = `
      const { AuditSpool } = await import(${JSON.stringify(new URL("../../../src/audit/spool.ts", import.meta.url).href)});
      const { spool } = AuditSpool.open(process.argv[1], "test-chain");
      await spool.write('{"ok":true}');
      console.log(JSON.stringify({ dir: spool.dir }));
      setTimeout(() => process.exit(0), 300);
    `;
    const runs = Array.from({ length: 6 }, () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, root], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d));
        child.stderr.on("data", (d: Buffer) => (err += d));
        child.on("close", (code) => resolve({ code, out, err }));
      }),
    );
    const results = await Promise.all(runs);
    for (const r of results) expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    expect(new Set(results.map((r) => JSON.parse(r.out).dir)).size).toBe(6);
  }, 60_000);

  it("adopts only spools of its own audit chain, or of none named (made before spools named theirs)", async () => {
    const left = AuditSpool.open(root, "chain-a");
    await left.spool.write('{"n":1}');
    await left.spool.close(false);
    const older = join(root, "older");
    mkdirSync(older);
    writeFileSync(join(older, "000001.jsonl"), '{"n":2}\n');

    const other = AuditSpool.open(root, "chain-b");
    expect(other.recovered.map((r) => r.lines)).toEqual([['{"n":2}']]);
    expect(other.foreign).toEqual([left.spool.dir]);
    expect(existsSync(left.spool.dir)).toBe(true);
    await other.spool.close(true);

    const own = AuditSpool.open(root, "chain-a");
    expect(own.recovered.map((r) => r.lines)).toEqual([['{"n":1}']]);
    expect(own.foreign).toEqual([]);
    await own.spool.close(true);
  });

  it("refuses writes once closed", async () => {
    const { spool } = AuditSpool.open(root, "test-chain");
    await spool.close(true);
    await expect(spool.write("{}")).rejects.toThrow(/closed/);
  });
});
