import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { editAuditLogAsSuperuser } from "../helpers/audit.js";
import { runCli } from "../helpers/cli.js";
import { createAgent, createUpstream } from "../helpers/scenario.js";

type Event = { id: string; reason: string | null; hash: string };

/** `keyward audit verify` as the security team runs it, on a chain someone edited in SQL behind the broker's back. */
describe("keyward audit verify on a tampered chain", () => {
  let store: Store;
  let broker: TestBroker;
  let env: Record<string, string>;
  let events: Event[];

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    env = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY };
    // A few admin changes, each an audit event.
    await createUpstream(broker, { name: "api", baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "cli-verify-secret" });
    for (const name of ["a1", "a2", "a3"]) await createAgent(broker, name);
    const exported = await broker.admin("get", "/v1/audit/export");
    events = exported.text.trim().split("\n").map((line) => JSON.parse(line) as Event);
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });


  it("exits 1 and names the first broken link, in text and with --json", async () => {
    expect(events.length).toBeGreaterThanOrEqual(4);
    expect((await broker.admin("get", "/v1/audit/verify")).body.ok).toBe(true); // (the intact case: test/e2e/cli.test.ts)

    // Two rows edited: verification stops at the first one.
    const victim = events[1]!;
    const later = events[3]!;
    await editAuditLogAsSuperuser(broker, `UPDATE "AuditEvent" SET reason = 'nothing to see' WHERE id = $1 OR id = $2`, [victim.id, later.id]);
    try {
      const text = await runCli(["audit", "verify"], { env });
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/^AUDIT CHAIN BROKEN/);
      expect(text.stdout).toContain(`first broken link: event ${victim.id}: event content does not match its hash`);
      expect(text.stdout).not.toContain(`event ${later.id}:`);
      expect(text.stdout).toMatch(new RegExp(`^checkedEvents:\\s+1$`, "m")); // the one event before it

      const json = await runCli(["audit", "verify", "--json"], { env });
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        ok: false,
        firstBroken: { at: "event", id: victim.id, reason: "event content does not match its hash" },
        checkedEvents: 1,
      });
    } finally {
      for (const e of [victim, later]) await editAuditLogAsSuperuser(broker, `UPDATE "AuditEvent" SET reason = $2 WHERE id = $1`, [e.id, e.reason]);
    }
    expect((await broker.admin("get", "/v1/audit/verify")).body).toMatchObject({ ok: true, firstBroken: null });
  }, 60_000);
});
