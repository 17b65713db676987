import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store } from "../helpers/broker.js";
import { cli, emptyHome, runCli } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "../security/cases.js";

// What `keyward restore` does with a backup it cannot trust, or a master key that cannot read it: refuse
// it whole, clearly, before the new database holds any of it (test/e2e/backup-restore.test.ts has the
// backup and restore that work).

const UPSTREAM_SECRET = "real-upstream-secret-for-restore-0123";

describe("keyward restore of a damaged backup, or with another master key", () => {
  const work = emptyHome();
  const backupFile = join(work, "keyward.jsonl");
  const stores: Store[] = [];
  let source: Store;
  let lines: string[];

  /** An empty database to restore into, and the environment `keyward restore` needs for it with `key`. */
  const target = (key?: string) => {
    const store = newStore();
    stores.push(store);
    const env: Record<string, string> = { DATABASE_URL: store.databaseUrl, KEYWARD_DATA_DIR: store.dataDir };
    if (key !== undefined) env.KEYWARD_MASTER_KEY = key;
    return { store, env };
  };
  /** The tables in a store's schema: what a refused restore must not have left behind. */
  const tablesOf = async (store: Store) => {
    const url = new URL(store.databaseUrl);
    const schema = url.searchParams.get("schema");
    url.searchParams.delete("schema");
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [schema]);
      return rows.map((r: { table_name: string }) => r.table_name);
    } finally {
      await client.end();
    }
  };
  const write = (name: string, text: string) => {
    const file = join(work, name);
    writeFileSync(file, text);
    return file;
  };

  beforeAll(async () => {
    const upstream = await startUpstream();
    source = newStore();
    stores.push(source);
    const broker = await startBroker(source);
    try {
      await createUpstream(broker, { name: "hosting", baseUrl: upstream.url, environment: "staging", secret: UPSTREAM_SECRET });
      const agent = await createAgent(broker, "deploy-bot");
      await createGrant(broker, { name: "deploy", agents: [agent.id], upstream: "hosting", methods: ["GET"], paths: ["/v1/**"] });
      const token = await tokenFor(broker, agent, { grant: "deploy" });
      const { jti } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
      await broker.admin("post", "/v1/revocations", { jti, reason: "leaked" });
    } finally {
      await broker.close();
      await upstream.close();
    }
    await cli(["backup", "-o", backupFile], { env: { DATABASE_URL: source.databaseUrl, KEYWARD_MASTER_KEY: source.masterKey } });
    lines = readFileSync(backupFile, "utf8").trim().split("\n");
  }, 120_000);
  afterAll(async () => {
    for (const store of stores) await store.drop();
    rmSync(work, { recursive: true, force: true });
  });

  describe(title("FLT-21"), () => {
    it("a backup cut at a line boundary, after its audit events or before its last row, is refused, and nothing is restored", async () => {
      const { env } = target(source.masterKey);
      const lastEvent = lines.map((l) => l.includes('"table":"AuditEvent"')).lastIndexOf(true);
      expect(lastEvent).toBeLessThan(lines.length - 5);
      // The last line is the seal: cut just after the audit events, and before the last row.
      for (const cut of [lastEvent + 1, lines.length - 2]) {
        const file = write(`cut-${cut}.jsonl`, lines.slice(0, cut).join("\n") + "\n");
        const refused = await runCli(["restore", file], { env });
        expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyward: the backup is incomplete: \w+ has \d+ of its \d+ rows/) });
        expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      }
      // Nothing was left behind: the whole backup still goes in.
      const restored = JSON.parse(await cli(["--json", "restore", backupFile], { env })).restored;
      expect(restored).toMatchObject({ Upstream: 1, Grant: 1, SigningKey: 1, Revocation: 1 });
    }, 60_000);

    it("a backup cut in the middle of a line is refused with the line's number, in one line", async () => {
      const { env } = target(source.masterKey);
      const text = lines.join("\n");
      const file = write("half.jsonl", text.slice(0, Math.floor(text.length * 0.9)));
      const refused = await runCli(["restore", file], { env });
      expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyward: line \d+ of the backup is not a whole JSON line: the backup is cut short or corrupted\n$/) });
      await cli(["restore", backupFile], { env });
    }, 60_000);
  });

  describe(title("FLT-22"), () => {
    it("another master key, or none, is refused before anything is written", async () => {
      const { store, env } = target();
      const other = await runCli(["restore", backupFile], { env: { ...env, KEYWARD_MASTER_KEY: store.masterKey } });
      expect(other).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyward: the backup is sealed under another master key: .*KEYWARD_MASTER_KEY/) });
      expect(other.stderr.trim().split("\n")).toHaveLength(1);
      const none = await runCli(["restore", backupFile], { env });
      expect(none).toMatchObject({ code: 1, stderr: expect.stringMatching(/KEYWARD_MASTER_KEY/) });
      expect(`${other.stderr}${none.stderr}`).not.toContain(source.masterKey);
      // The database is still empty: the right key restores into it.
      await cli(["restore", backupFile], { env: { ...env, KEYWARD_MASTER_KEY: source.masterKey } });
      const broker = await startBroker({ ...store, masterKey: source.masterKey });
      try {
        expect((await broker.admin("get", "/v1/audit/verify")).body.ok).toBe(true);
      } finally {
        await broker.close();
      }
    }, 60_000);
  });

  describe(title("SEC-05"), () => {
    it("a key file, an env file or a corrupted line: the error names the line, never its content", async () => {
      const { env } = target(source.masterKey);
      const masterKeyText = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
      const apiKey = "sk-live-0123456789abcdefghij";
      const upstreamLine = lines.findIndex((l) => l.includes('"table":"Upstream"'));
      const corrupted = [...lines];
      corrupted[upstreamLine] = `{"table":"Upstream","row":{"secret": ${apiKey}}}`;
      for (const [name, text, secret] of [
        ["master.key", `${masterKeyText}\n`, masterKeyText],
        [".env", `OPENAI_API_KEY=${apiKey}\n`, apiKey],
        ["corrupted.jsonl", corrupted.join("\n") + "\n", apiKey],
      ] as const) {
        const refused = await runCli(["restore", write(name, text)], { env });
        expect(refused.code).toBe(1);
        expect(refused.stderr).toMatch(/^keyward: (not a Keyward backup|line \d+ of the backup)/);
        expect(refused.stderr.trim().split("\n")).toHaveLength(1);
        for (let i = 0; i + 6 <= secret.length; i++) expect(refused.stderr).not.toContain(secret.slice(i, i + 6));
      }
      await cli(["restore", backupFile], { env });
    }, 60_000);
  });

  describe(title("FLT-25"), () => {
    it("two restores into one empty database at once: one restores, the other is refused as not empty, in one line", async () => {
      for (let round = 0; round < 3; round++) {
        const { env } = target(source.masterKey);
        const results = await Promise.all([runCli(["restore", backupFile], { env }), runCli(["restore", backupFile], { env })]);
        const codes = results.map((r) => r.code).sort();
        expect(codes, results.map((r) => r.stderr).join("")).toEqual([0, 1]);
        const refused = results.find((r) => r.code === 1)!;
        expect(refused.stderr).toMatch(/^keyward: the database is not empty \(\w+ has rows\): restore only into an empty database\n$/);
      }
    }, 60_000);
  });

  describe(title("FLT-26"), () => {
    it("backup, restore and migrate with the database down: one line naming it, never the password, no stack", async () => {
      const password = "db-password-0123456789";
      const env = { DATABASE_URL: `postgresql://keyward:${password}@127.0.0.1:18499/keyward`, KEYWARD_MASTER_KEY: source.masterKey };
      for (const args of [["backup", "-o", join(work, "down.jsonl")], ["restore", backupFile], ["migrate"], ["--json", "backup"]]) {
        const result = await runCli(args, { env });
        expect(result.code, args.join(" ")).toBe(1);
        expect(result.stderr).toMatch(args[0] === "--json" ? /^\{"error":\{"code":"database_unavailable","message":"the database 127\.0\.0\.1:18499\/keyward is unreachable/ : /^keyward: the database 127\.0\.0\.1:18499\/keyward is unreachable \(ECONNREFUSED\)\n$/);
        expect(result.stderr.trim().split("\n")).toHaveLength(1);
        expect(result.stderr).not.toContain(password);
      }
    }, 60_000);
  });

  describe(title("ADM-26"), () => {
    const header = () => JSON.parse(lines[0]!);
    const revocationLine = () => lines.findIndex((l) => l.includes('"table":"Revocation"'));

    it("a revocation dropped and the header's count fixed to match, or a line added after the seal: refused, nothing written", async () => {
      const { store, env } = target(source.masterKey);
      const edited = { ...header(), rows: { ...header().rows, Revocation: header().rows.Revocation - 1 } };
      const dropped = [JSON.stringify(edited), ...lines.slice(1).filter((_, i) => i + 1 !== revocationLine())];
      const refused = await runCli(["restore", write("dropped.jsonl", dropped.join("\n") + "\n")], { env });
      expect(refused).toMatchObject({ code: 1, stderr: "keyward: the backup's seal does not match its lines: it was altered after `keyward backup` wrote it\n" });
      const appended = [...lines, lines[revocationLine()]!];
      const after = await runCli(["restore", write("appended.jsonl", appended.join("\n") + "\n")], { env });
      expect(after).toMatchObject({ code: 1, stderr: `keyward: line ${appended.length} of the backup comes after its seal: lines were added to it\n` });
      const unsealedEnding = await runCli(["restore", write("no-seal-line.jsonl", lines.slice(0, -1).join("\n") + "\n")], { env });
      expect(unsealedEnding).toMatchObject({ code: 1, stderr: "keyward: the backup has no seal line at its end: it was cut short\n" });
      expect(await tablesOf(store)).toEqual([]);
      const restored = JSON.parse(await cli(["--json", "restore", backupFile], { env })).restored;
      expect(restored).toMatchObject({ Revocation: 1 });
    }, 60_000);

    it("the same edit passed off as an unsealed backup of an earlier Keyward: refused unless --allow-unsealed", async () => {
      const { env } = target(source.masterKey);
      const { seal: _seal, ...unsealedHeader } = { ...header(), format: "keyward-backup/1" };
      const downgraded = [JSON.stringify(unsealedHeader), ...lines.slice(1, -1)];
      const file = write("downgraded.jsonl", downgraded.join("\n") + "\n");
      const refused = await runCli(["restore", file], { env });
      expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyward: the backup is not sealed .* restore it with --allow-unsealed only if you trust the file\n$/) });
      // An operator who trusts the file (a backup of the PGlite-based Keyward, say) restores it.
      const restored = JSON.parse(await cli(["--json", "restore", "--allow-unsealed", file], { env })).restored;
      expect(restored).toMatchObject({ Upstream: 1, Revocation: 1 });
    }, 60_000);

    it("keyward backup without the master key: refused, no file", async () => {
      const file = join(work, "keyless.jsonl");
      const refused = await runCli(["backup", "-o", file], { env: { DATABASE_URL: source.databaseUrl } });
      expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/^keyward: keyward backup seals the backup under the broker's master key, and none is given: set KEYWARD_MASTER_KEY/) });
      expect(existsSync(file)).toBe(false);
    }, 60_000);
  });

  describe(title("FLT-36"), () => {
    it("a restore refused after it began (an altered audit event) leaves the database as it found it: no tables, so an older backup still goes in", async () => {
      const { store, env } = target(source.masterKey);
      const i = lines.findIndex((l) => l.includes('"table":"AuditEvent"'));
      const event = JSON.parse(lines[i]!);
      event.row.reason = "nothing to see here";
      const altered = lines.map((l, n) => (n === i ? JSON.stringify(event) : l));
      const refused = await runCli(["restore", write("altered-event.jsonl", altered.join("\n") + "\n")], { env });
      expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/audit log does not verify at event \d+/) });
      // Before: the database had been migrated to the backup's version outside the restore's transaction.
      expect(await tablesOf(store)).toEqual([]);
      // A backup of an earlier schema version (its header naming fewer migrations) gets past the version check.
      const older = { ...JSON.parse(lines[0]!), migrations: JSON.parse(lines[0]!).migrations.slice(0, -1) };
      const olderRefused = await runCli(["restore", write("older.jsonl", [JSON.stringify(older), ...lines.slice(1)].join("\n") + "\n")], { env });
      expect(olderRefused.stderr).not.toMatch(/past the backup's schema version/);
      expect(await tablesOf(store)).toEqual([]);
      await cli(["restore", backupFile], { env });
      expect((await tablesOf(store)).length).toBeGreaterThan(10);
    }, 60_000);
  });
});
