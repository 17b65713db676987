import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deriveCheckpointKey, contentHash, linkHash, type CheckpointKeys } from "../../src/audit/chain.js";
import { pruneAudit, reanchorCheckpoint } from "../../src/audit/retention.js";
import { verifyAuditChain } from "../../src/audit/verify.js";
import type { SqlSession } from "../../src/db/database.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { waitFor } from "../helpers/wait.js";

type Event = { id: string; kind: string; at: string; reason: string | null; hash: string; prevHash: string; contentHash: string } & Record<string, unknown>;

/**
 * The audit log as the security team relies on it: complete (written before anything is forwarded),
 * append-only in the database, tamper-evident, queryable, exportable, forwardable, and prunable without
 * losing checkability.
 */
describe("audit log", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let sink: Awaited<ReturnType<typeof startUpstream>>;
  let sinkUp = false;
  const accepted: string[] = [];
  let token: string;
  let keys: CheckpointKeys;

  beforeAll(async () => {
    upstream = await startUpstream();
    // The webhook sink refuses until told otherwise, to show delivery is retried.
    sink = await startUpstream((_req, res, body) => {
      if (sinkUp) accepted.push(body);
      res.writeHead(sinkUp ? 204 : 503);
      res.end();
    });
    store = newStore();
    broker = await startBroker(store, { KEYWARD_AUDIT_WEBHOOK_URL: `${sink.url}/ingest`, KEYWARD_AUDIT_WEBHOOK_AUTHORIZATION: "Splunk sink-token", KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS: "1000" });
    keys = [deriveCheckpointKey(Buffer.from(store.masterKey, "base64"))];
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "audit-test-secret-value" });
    const agent = await createAgent(broker, "audited");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET", "POST"], paths: ["/v1/**"], deny: [{ method: "DELETE" }] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await sink?.close();
    await store?.drop();
  });

  const call = (method: "get" | "post" | "delete", path: string) =>
    broker.http()[method](`/proxy/api${path}`).set("authorization", `Bearer ${token}`);
  const verify = async () => (await broker.admin("get", "/v1/audit/verify")).body;
  const allEvents = async (): Promise<Event[]> => {
    const res = await broker.admin("get", "/v1/audit/export");
    return res.text.trim().split("\n").map((line) => JSON.parse(line));
  };
  /** Raw SQL as a database superuser would run it, around the application. */
  const sql = async <T>(fn: (s: SqlSession) => Promise<T>): Promise<T> => {
    const session = await broker.keyward.db.session();
    try {
      return await fn(session);
    } finally {
      session.release();
    }
  };
  const asSuperuser = (statement: string, params: unknown[] = []) =>
    sql(async (s) => {
      await s.exec(`ALTER TABLE "AuditEvent" DISABLE TRIGGER USER`);
      try {
        await s.query(statement, params);
      } finally {
        await s.exec(`ALTER TABLE "AuditEvent" ENABLE TRIGGER USER`);
      }
    });

  it("chains every event: gapless ids, each linked to the previous one, and verify says so", async () => {
    expect((await call("get", "/v1/a")).status).toBe(200);
    expect((await call("delete", "/v1/a")).status).toBe(403);
    const events = await allEvents();
    expect(events.length).toBeGreaterThan(5);
    events.forEach((e, i) => {
      expect(BigInt(e.id)).toBe(BigInt(events[0]!.id) + BigInt(i));
      if (i > 0) expect(e.prevHash).toBe(events[i - 1]!.hash);
      expect(e.hash).toBe(linkHash(e.prevHash, BigInt(e.id), e.contentHash));
      expect(e.contentHash).toBe(contentHash({ ...e, at: new Date(e.at) }));
    });
    const result = await verify();
    expect(result).toMatchObject({ ok: true, firstBroken: null, checkedEvents: events.length, head: { id: events.at(-1)!.id, hash: events.at(-1)!.hash } });
  });

  it("times every proxied call, allowed or denied, and records the upstream's status for allowed ones", async () => {
    // The GET (allowed, answered 200 by the upstream) and the DELETE (denied) of the test above.
    const newest = async (query: string) => ((await broker.admin("get", `/v1/audit?${query}&limit=1`)).body.events as Event[])[0];
    const allowed = await newest("kind=proxy.response&method=GET&pathPrefix=/v1/a");
    const denied = await newest("kind=proxy&decision=deny&method=DELETE&pathPrefix=/v1/a");
    expect(allowed).toMatchObject({ decision: "allow", status: 200, latencyMs: expect.any(Number) });
    expect(denied).toMatchObject({ decision: "deny", status: 403, latencyMs: expect.any(Number) });
    for (const e of [allowed!, denied!]) expect(e.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("the database refuses UPDATE, DELETE and TRUNCATE of audit events", async () => {
    for (const statement of [`UPDATE "AuditEvent" SET reason = 'x'`, `DELETE FROM "AuditEvent"`, `TRUNCATE "AuditEvent"`]) {
      await expect(sql((s) => s.exec(statement))).rejects.toThrow(/refused/);
    }
    expect((await verify()).ok).toBe(true);
  });

  it("an event edited in SQL breaks verification at exactly that event; restoring it heals it", async () => {
    const events = await allEvents();
    const victim = events[Math.floor(events.length / 2)]!;
    await asSuperuser(`UPDATE "AuditEvent" SET reason = 'nothing to see' WHERE id = $1`, [victim.id]);
    expect((await verify()).firstBroken).toEqual({ at: "event", id: victim.id, reason: "event content does not match its hash" });
    await asSuperuser(`UPDATE "AuditEvent" SET reason = $2 WHERE id = $1`, [victim.id, victim.reason]);
    expect((await verify()).ok).toBe(true);
  });

  it("an edit that also recomputes the event's own hashes is caught at the next link", async () => {
    const events = await allEvents();
    const victim = events[2]!;
    const forged = { ...victim, at: new Date(victim.at), reason: "forged" };
    const forgedContent = contentHash(forged);
    const forgedHash = linkHash(victim.prevHash, BigInt(victim.id), forgedContent);
    await asSuperuser(`UPDATE "AuditEvent" SET reason = 'forged', "contentHash" = $2, hash = $3 WHERE id = $1`, [victim.id, forgedContent, forgedHash]);
    expect((await verify()).firstBroken).toEqual({ at: "event", id: events[3]!.id, reason: "previous hash does not match the previous event" });
    await asSuperuser(`UPDATE "AuditEvent" SET reason = $2, "contentHash" = $3, hash = $4 WHERE id = $1`, [victim.id, victim.reason, victim.contentHash, victim.hash]);
    expect((await verify()).ok).toBe(true);
  });

  it("a deleted event, or a cut-off tail, is reported where the chain breaks", async () => {
    const events = await allEvents();
    const victim = events[1]!;
    const restore = async (e: Event) =>
      asSuperuser(
        `INSERT INTO "AuditEvent" SELECT * FROM json_populate_record(NULL::"AuditEvent", $1::json)`,
        [JSON.stringify({ ...e, at: e.at.replace("Z", "") })],
      );
    await asSuperuser(`DELETE FROM "AuditEvent" WHERE id = $1`, [victim.id]);
    expect((await verify()).firstBroken).toEqual({ at: "event", id: victim.id, reason: "event is missing" });
    await restore(victim);
    expect((await verify()).ok).toBe(true);

    const last = events.at(-1)!;
    await asSuperuser(`DELETE FROM "AuditEvent" WHERE id = $1`, [last.id]);
    expect((await verify()).firstBroken).toEqual({ at: "event", id: last.id, reason: "events at the end of the chain are missing" });
    await restore(last);
    expect((await verify()).ok).toBe(true);
  });

  it("if the database cannot take audit events, calls are refused with 503 until it can; what was spooled is written then", async () => {
    const before = upstream.received.length;
    // Refused as a database refuses while it cannot take writes (SQLSTATE class 55, which the log retries), not
    // as a bad event (a constraint, class 23): an event refused alone for that is set aside, and one whose
    // retry met the refusal just before it was lifted would be, by a race this test does not look at.
    await sql((s) =>
      s.exec(`CREATE FUNCTION test_refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit events refused by the test' USING ERRCODE = '55000'; END $$;
        CREATE TRIGGER test_refuse_writes BEFORE INSERT ON "AuditEvent" FOR EACH ROW EXECUTE FUNCTION test_refuse_writes()`),
    );
    let spooled: string | undefined;
    let refused: string | undefined;
    try {
      // Its allow event is on disk in the broker's spool before it is forwarded, so it goes ahead; shipping
      // that event to the database fails, and from then on calls are refused (fail closed).
      const first = await call("get", "/v1/spooled");
      expect(first.status).toBe(200);
      spooled = first.headers["x-request-id"];
      // Shipping it fails: from then on the broker is not ready and refuses calls.
      await vi.waitFor(async () => expect((await broker.http().get("/readyz")).status).toBe(503));
      const res = await call("get", "/v1/unaudited");
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("audit_unavailable");
      refused = res.headers["x-request-id"];
      expect(upstream.received.filter((r) => r.url === "/v1/unaudited")).toEqual([]);
    } finally {
      await sql((s) => s.exec(`DROP TRIGGER test_refuse_writes ON "AuditEvent"; DROP FUNCTION test_refuse_writes()`));
    }
    // Ready again once its retry gets the events in (without needing a call to notice).
    await vi.waitFor(async () => expect((await broker.http().get("/readyz")).status).toBe(200), { timeout: 10_000 });
    expect((await call("get", "/v1/audited")).status).toBe(200);
    expect(upstream.received.length).toBe(before + 2);
    // Nothing was lost or set aside: the spooled call's events and the refusal (the outcome recorded is the
    // one sent) are written once the database takes events again.
    await vi.waitFor(async () => {
      const events = await allEvents();
      expect(events.filter((e) => e.requestId === spooled).map((e) => `${e.kind} ${e.status}`).sort()).toEqual(["proxy null", "proxy.response 200"]);
      expect(events.filter((e) => e.requestId === refused).map((e) => [e.kind, e.status, e.reason])).toEqual([["proxy", 503, "audit_unavailable"]]);
    });
    expect((await verify()).ok).toBe(true);
  });

  it("filters by agent, grant, jti, upstream, environment, decision, method, path prefix and time; pages newest first", async () => {
    const [proxyEvent] = (await broker.admin("get", "/v1/audit?kind=proxy&decision=deny&method=DELETE&limit=1")).body.events as Event[];
    expect(proxyEvent).toMatchObject({ kind: "proxy", decision: "deny", method: "DELETE", path: "/v1/a", upstream: "api", environment: "staging", reason: "method_not_granted", details: { reason: "the token does not allow DELETE" } });
    const query = async (q: string) => ((await broker.admin("get", `/v1/audit?kind=proxy&${q}`)).body.events as Event[]).map((e) => e.id);
    const all = await query("limit=500");
    for (const q of [
      `agentId=${proxyEvent!.agentId}`,
      `grantId=${proxyEvent!.grantId}`,
      `jti=${proxyEvent!.jti}`,
      "upstream=api",
      "environment=staging",
    ]) {
      expect(await query(q)).toEqual(all);
    }
    expect(await query("environment=production")).toEqual([]);
    // The DELETE, and the call refused while the audit log could not be written (the test above).
    const [refusedForAudit] = await query("pathPrefix=/v1/unaudited");
    expect(await query("decision=deny")).toEqual([refusedForAudit, proxyEvent!.id]);
    expect(await query("method=DELETE")).toEqual([proxyEvent!.id]);
    // A refusal's code, from the catalogue; a code that is not one is a 400, not an empty page.
    expect(await query(`reason=${proxyEvent!.reason}`)).toEqual([proxyEvent!.id]);
    expect(await query("reason=path_not_granted")).toEqual([]);
    expect((await broker.admin("get", "/v1/audit?reason=no_such_code")).status).toBe(400);
    expect(await query("pathPrefix=/v1/a")).toHaveLength(3); // /v1/a (GET), /v1/a (DELETE), /v1/audited
    expect(await query(`pathPrefix=${encodeURIComponent("/v1/_")}`)).toEqual([]); // _ is literal, not a wildcard
    expect(await query(`since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).toEqual([]);
    expect(await query(`until=${encodeURIComponent(proxyEvent!.at)}&since=${encodeURIComponent(proxyEvent!.at)}`)).toContain(proxyEvent!.id);

    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await broker.admin("get", `/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      pages.push(...res.body.events.map((e: Event) => e.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    const ids = pages.map(BigInt);
    expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : 1)));
    expect(new Set(pages).size).toBe(pages.length);
    expect(pages.length).toBe((await allEvents()).length);
  });

  it("refuses malformed filters", async () => {
    for (const q of ["method=FETCH", "decision=maybe", "pathPrefix=noslash", "cursor=abc", "afterId=-1", "since=yesterday", "unknown=1"]) {
      expect((await broker.admin("get", `/v1/audit?${q}`)).status, q).toBe(400);
    }
  });

  it("exports JSON Lines oldest first, resuming after an id", async () => {
    const res = await broker.admin("get", "/v1/audit/export?kind=proxy");
    expect(res.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    const events = res.text.trim().split("\n").map((l) => JSON.parse(l) as Event);
    expect(events.every((e) => e.kind === "proxy")).toBe(true);
    const after = await broker.admin("get", `/v1/audit/export?kind=proxy&afterId=${events[0]!.id}`);
    expect(after.text.trim().split("\n").map((l) => JSON.parse(l).id)).toEqual(events.slice(1).map((e) => e.id));
  });

  it("forwards every event once, in order, to the webhook, retrying while it refuses", async () => {
    // The sink tries once a second: the calls above may all have been answered within one.
    await waitFor(() => sink.received.length > 0, 5_000, "the webhook's first (refused) delivery", 50);
    expect(sink.received[0]!.headers).toMatchObject({ authorization: "Splunk sink-token", "content-type": "application/x-ndjson" });
    sinkUp = true;
    const expected = (await allEvents()).map((e) => e.id);
    const delivered = () => accepted.flatMap((body) => body.trim().split("\n").map((line) => JSON.parse(line).id as string));
    await waitFor(() => delivered().length >= expected.length, 10_000, () => `${expected.length} events delivered, got ${delivered().length}`, 100);
    expect(delivered().slice(0, expected.length)).toEqual(expected);
    expect(new Set(delivered()).size).toBe(delivered().length);
  });

  let checkpointId: number | null = null;

  it("prunes behind a signed checkpoint: the rest still verifies, and only covered events can be deleted", async () => {
    const events = await allEvents();
    const cut = events[4]!;
    const firstKept = events.find((e) => new Date(e.at) >= new Date(cut.at))!;
    const result = await pruneAudit(broker.keyward.db.prisma, keys, { olderThan: new Date(cut.at), keepUnshipped: true, actor: "test" });
    expect(result).toMatchObject({ refused: null, prunedEvents: Number(BigInt(firstKept.id) - BigInt(events[0]!.id)) });
    const after = await verify();
    expect(after).toMatchObject({ ok: true, checkpoint: { id: result.checkpointId, throughId: (BigInt(firstKept.id) - 1n).toString() } });
    expect((await allEvents())[0]!.id).toBe(firstKept.id);
    await expect(sql((s) => s.exec(`DELETE FROM "AuditEvent" WHERE id = ${firstKept.id}`))).rejects.toThrow(/not covered by a checkpoint/);
    await expect(sql((s) => s.exec(`DELETE FROM "AuditCheckpoint"`))).rejects.toThrow(/append-only/);
    checkpointId = result.checkpointId;
  });

  it("a master-key rotation re-signs the newest checkpoint under the new key, so verification outlives the old key", async () => {
    const { prisma } = broker.keyward.db;
    const rotated = deriveCheckpointKey(randomBytes(32));
    expect(await verifyAuditChain(prisma, [rotated])).toMatchObject({ ok: false, firstBroken: { at: "checkpoint", id: checkpointId } });
    expect(await reanchorCheckpoint(prisma, [rotated, keys[0]], "test")).toBe(true);
    expect(await reanchorCheckpoint(prisma, [rotated, keys[0]], "test")).toBe(false); // once is enough
    expect(await verifyAuditChain(prisma, [rotated])).toMatchObject({ ok: true });
    keys = [rotated];
  });

  it("a checkpoint altered in SQL is caught, and pruning then refuses", async () => {
    await sql(async (s) => {
      await s.exec(`ALTER TABLE "AuditCheckpoint" DISABLE TRIGGER USER`);
      await s.exec(`UPDATE "AuditCheckpoint" SET "prunedEvents" = 0`);
      await s.exec(`ALTER TABLE "AuditCheckpoint" ENABLE TRIGGER USER`);
    });
    const result = await verifyAuditChain(broker.keyward.db.prisma, keys);
    expect(result.firstBroken).toEqual({ at: "checkpoint", id: checkpointId, reason: "checkpoint content does not match its hash" });
    const refused = await pruneAudit(broker.keyward.db.prisma, keys, { olderThan: new Date(), keepUnshipped: false, actor: "test" });
    expect(refused).toMatchObject({ prunedEvents: 0, refused: { at: "checkpoint" } });
  });
});
