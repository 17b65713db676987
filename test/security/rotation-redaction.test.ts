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
    const seen: string[] = [];
    upstream = await startUpstream((req, res) => {
      const key = String(req.headers["x-api-key"]);
      if (!seen.includes(key)) seen.push(key);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ recentKeys: seen }));
    });
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
