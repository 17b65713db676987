import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "./cases.js";

/**
 * An upstream that serves its request log: the key of every call it was sent, the credentials rotated
 * away included (they may still be accepted upstream). Two rotations in a day must not uncover the first.
 */
describe("credentials rotated away within the overlap", () => {
  const REDACTED = "[redacted-by-keyward]";
  const keys = ["sk_live_first_" + "1".repeat(24), "sk_live_second_" + "2".repeat(24), "sk_live_third_" + "3".repeat(24)];
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await keyLoggingUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "logs", baseUrl: upstream.url, environment: "staging", secret: keys[0]!, auth: { type: "header", header: "X-Api-Key", template: "{secret}" } });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "logs", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = () => broker.http().get("/proxy/logs/requests").set("authorization", `Bearer ${token}`);

  it(title("SEC-18"), async () => {
    expect((await call()).body).toEqual({ recentKeys: [REDACTED] });
    for (const key of keys.slice(1)) {
      expect((await broker.admin("put", "/v1/upstreams/logs/secret", { secret: key })).status).toBe(200);
      // A call with each: this replica compiles (and so replaces) every version.
      const res = await call();
      expect(upstream.received.at(-1)!.headers["x-api-key"]).toBe(key);
      expect(res.status).toBe(statusOf("SEC-18"));
    }
    // Another change to the upstream (its base path): one more replacement, the secret the same.
    expect((await broker.admin("patch", "/v1/upstreams/logs", { baseUrl: `${upstream.url}/v2` })).status).toBe(200);
    const res = await call();
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ recentKeys: [REDACTED, REDACTED, REDACTED] });
    for (const key of keys) expect(res.text).not.toContain(key.slice(0, 16));
  });
});

/**
 * The same request log behind two replicas on one database: the key rotated away was only ever used by
 * the first. The second, and the first once restarted, must still know to redact it.
 */
describe("credentials rotated away, on every replica and across a restart", () => {
  const REDACTED = "[redacted-by-keyward]";
  const [oldKey, newKey] = ["sk_live_before_" + "4".repeat(24), "sk_live_after_" + "5".repeat(24)];
  let store: Store;
  let first: TestBroker;
  let second: TestBroker | undefined;
  let restarted: TestBroker | undefined;
  let firstClosed = false;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;

  beforeAll(async () => {
    upstream = await keyLoggingUpstream();
    store = newStore();
    first = await startBroker(store);
    await createUpstream(first, { name: "logs", baseUrl: upstream.url, environment: "staging", secret: oldKey, auth: { type: "header", header: "X-Api-Key", template: "{secret}" } });
    agent = await createAgent(first, "agent");
    await createGrant(first, { name: "g", agents: [agent.id], upstream: "logs", methods: ["GET"], paths: ["/**"] });
  });
  afterAll(async () => {
    if (!firstClosed) await first?.close();
    await second?.close();
    await restarted?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = async (broker: TestBroker) => {
    const token = await tokenFor(broker, agent, { grant: "g" });
    return broker.http().get("/proxy/logs/requests").set("authorization", `Bearer ${token}`);
  };

  it(title("SEC-40"), async () => {
    expect((await call(first)).body).toEqual({ recentKeys: [REDACTED] });
    expect((await first.admin("put", "/v1/upstreams/logs/secret", { secret: newKey })).status).toBe(200);
    // A replica that never sent the old key, started after the rotation.
    second = await startBroker(store);
    const viaSecond = await call(second);
    expect(upstream.received.at(-1)!.headers["x-api-key"]).toBe(newKey);
    expect(viaSecond.status).toBe(statusOf("SEC-40"));
    expect(viaSecond.body).toEqual({ recentKeys: [REDACTED, REDACTED] });
    // The replica that did, restarted: what it held in memory is gone.
    await first.close();
    firstClosed = true;
    restarted = await startBroker(store);
    const viaRestarted = await call(restarted);
    expect(viaRestarted.body).toEqual({ recentKeys: [REDACTED, REDACTED] });
    for (const res of [viaSecond, viaRestarted]) expect(res.text).not.toContain(oldKey.slice(0, 16));
  });

  it("keeps the replaced secrets encrypted, at most 8 per upstream (the first replaced kept), and deletes them once expired", async () => {
    const broker = restarted!;
    const prisma = broker.keyward.db.prisma;
    for (let i = 0; i < 10; i++) expect((await broker.admin("put", "/v1/upstreams/logs/secret", { secret: `sk_live_churn_${i}_${"6".repeat(24)}` })).status).toBe(200);
    const rows = await prisma.retiredUpstreamCredential.findMany({ orderBy: { retiredAt: "asc" } });
    expect(rows).toHaveLength(8);
    for (const row of rows) expect(row.secretsCiphertext).not.toContain("sk_live");
    const res = await call(broker);
    expect(res.text).not.toContain(oldKey.slice(0, 16));
    expect(res.text).not.toContain("sk_live_churn_8");
    // Past their overlap, they are deleted: by every replica once an hour, and at its start.
    await prisma.retiredUpstreamCredential.updateMany({ data: { expiresAt: new Date(Date.now() - 1000) } });
    await second!.close();
    second = await startBroker(store);
    await expect.poll(() => prisma.retiredUpstreamCredential.count()).toBe(0);
  });
});

/**
 * A deploy script that writes an upstream's whole definition on every run re-sends the secret in service.
 * That replaces no credential: a copy of it kept as replaced would take one of the 8 places and, at the
 * next rotations, push out a credential actually replaced that the upstream still echoes.
 */
describe("the secret in service written again unchanged", () => {
  const REDACTED = "[redacted-by-keyward]";
  const keys = ["a", "b", "c", "d"].map((k) => `sk_live_${k}_${"7".repeat(24)}`);
  const auth = { type: "header", header: "X-Api-Key", template: "{secret}" };
  let store: Store;
  let writer: TestBroker;
  let fresh: TestBroker | undefined;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;

  beforeAll(async () => {
    upstream = await keyLoggingUpstream();
    store = newStore();
    writer = await startBroker(store);
    await createUpstream(writer, { name: "logs", baseUrl: upstream.url, environment: "staging", secret: keys[0]!, auth });
    agent = await createAgent(writer, "agent");
    await createGrant(writer, { name: "g", agents: [agent.id], upstream: "logs", methods: ["GET"], paths: ["/**"] });
  });
  afterAll(async () => {
    await writer?.close();
    await fresh?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = async (broker: TestBroker) => {
    const token = await tokenFor(broker, agent, { grant: "g" });
    return broker.http().get("/proxy/logs/requests").set("authorization", `Bearer ${token}`);
  };

  it(title("ADM-48"), async () => {
    expect((await call(writer)).status).toBe(200);
    for (let run = 0; run < 3; run++) {
      expect((await writer.admin("put", "/v1/upstreams/logs/secret", { secret: keys[0] })).status).toBe(200);
      expect((await writer.admin("patch", "/v1/upstreams/logs", { secret: keys[0] })).status).toBe(200);
      expect((await writer.admin("patch", "/v1/upstreams/logs", { auth, secret: keys[0] })).status).toBe(200);
    }
    for (const key of keys.slice(1)) {
      expect((await writer.admin("put", "/v1/upstreams/logs/secret", { secret: key })).status).toBe(200);
      await call(writer); // the upstream sees (and logs) each key
    }
    // A replica that only knows what is stored.
    fresh = await startBroker(store);
    const res = await call(fresh);
    expect(res.body).toEqual({ recentKeys: keys.map(() => REDACTED) });
    for (const key of keys) expect(res.text).not.toContain(key.slice(0, 12));
    // The three replaced, once each.
    expect(await writer.keyward.db.prisma.retiredUpstreamCredential.count()).toBe(3);
  });
});

/** An upstream whose every answer lists the keys it was sent so far, as a request log an API shows would. */
function keyLoggingUpstream() {
  const seen: string[] = [];
  return startUpstream((req, res) => {
    const key = String(req.headers["x-api-key"]);
    if (!seen.includes(key)) seen.push(key);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ recentKeys: seen }));
  });
}
