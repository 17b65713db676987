import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "./cases.js";

/** A client-credentials token endpoint minting `token-1`, `token-2`, ... each valid for an hour. */
async function startTokenEndpoint() {
  let minted = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ access_token: `upstream-token-${++minted}-${"x".repeat(16)}`, token_type: "Bearer", expires_in: 3600 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    minted: () => minted,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * The provider revokes the access token Keyward minted for an upstream long before its `expires_in`: the
 * upstream answers 401 to it. The next call must mint anew, not go on failing for the hour.
 */
describe(title("TOK-44"), () => {
  let store: Store;
  let broker: TestBroker;
  let endpoint: Awaited<ReturnType<typeof startTokenEndpoint>>;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const revoked = new Set<string>();
  let refuseEverything = false;
  let token: string;

  beforeAll(async () => {
    endpoint = await startTokenEndpoint();
    upstream = await startUpstream((req, res) => {
      const sent = String(req.headers.authorization).replace("Bearer ", "");
      const refused = refuseEverything || revoked.has(sent);
      res.writeHead(refused ? 401 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(refused ? { error: "invalid_token" } : { ok: true }));
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, {
      name: "api",
      baseUrl: upstream.url,
      environment: "staging",
      secret: "client-secret-of-the-upstream",
      auth: { type: "oauth2-client-credentials", tokenUrl: endpoint.url, clientId: "keyward" },
    });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET", "POST"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await endpoint?.close();
    await store?.drop();
  });

  const call = () => broker.http().post("/proxy/api/orders").set("authorization", `Bearer ${token}`).send({ item: 1 });
  const sentToken = () => String(upstream.received.at(-1)!.headers.authorization).replace("Bearer ", "");

  it("a revoked minted token is dropped at its first 401 (the call itself not retried), and the next call mints anew", async () => {
    expect((await call()).status).toBe(200);
    const first = sentToken();
    revoked.add(first);
    const before = upstream.received.length;
    const refused = await call();
    expect(refused.status).toBe(statusOf("TOK-44"));
    // Sent once: a POST may not be idempotent.
    expect(upstream.received.length).toBe(before + 1);
    expect(endpoint.minted()).toBe(1);
    const again = await call();
    expect(again.status).toBe(200);
    expect(sentToken()).not.toBe(first);
    expect(endpoint.minted()).toBe(2);
    const refusedEvents = () => broker.keyward.db.prisma.auditEvent.findMany({ where: { kind: "proxy.response", status: 401 } });
    await expect.poll(async () => (await refusedEvents()).map((e) => e.details)).toEqual([expect.objectContaining({ upstreamTokenDropped: true })]);
  });

  it("an upstream answering 401 to every token makes Keyward mint at most once per 30 s, not once per call", async () => {
    refuseEverything = true;
    const minted = endpoint.minted();
    for (let i = 0; i < 10; i++) expect((await call()).status).toBe(401);
    expect(endpoint.minted() - minted).toBeLessThanOrEqual(1);
  });
});

/**
 * The same for a `github-app` upstream: its installation token revoked (DELETE /installation/token, the app
 * suspended) before GitHub's hour is out. One server plays GitHub: the token route and the API.
 */
describe(title("TOK-46"), () => {
  let store: Store;
  let broker: TestBroker;
  let github: Awaited<ReturnType<typeof startUpstream>>;
  const revoked = new Set<string>();
  let minted = 0;
  let token: string;

  beforeAll(async () => {
    github = await startUpstream((req, res) => {
      if (req.method === "POST" && req.url === "/app/installations/7/access_tokens") {
        res.writeHead(201, { "content-type": "application/json" });
        return res.end(JSON.stringify({ token: `ghs_installation_${++minted}_${"x".repeat(20)}`, expires_at: new Date(Date.now() + 3600_000).toISOString() }));
      }
      const refused = revoked.has(String(req.headers.authorization).replace("Bearer ", ""));
      res.writeHead(refused ? 401 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(refused ? { message: "Bad credentials" } : { ok: true }));
    });
    store = newStore();
    broker = await startBroker(store);
    const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string;
    await createUpstream(broker, { name: "github", baseUrl: github.url, environment: "staging", secret: pem, auth: { type: "github-app", appId: 1, installationId: 7 } });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "github", methods: ["GET"], paths: ["/repos/acme/app/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await github?.close();
    await store?.drop();
  });

  const call = () => broker.http().get("/proxy/github/repos/acme/app/issues").set("authorization", `Bearer ${token}`);
  const sentToken = () => String(github.received.filter((r) => r.method === "GET").at(-1)!.headers.authorization).replace("Bearer ", "");

  it("a revoked installation token is dropped at its first 401, and the next call gets another", async () => {
    expect((await call()).status).toBe(200);
    const first = sentToken();
    revoked.add(first);
    expect((await call()).status).toBe(statusOf("TOK-46"));
    expect(minted).toBe(1);
    expect((await call()).status).toBe(200);
    expect(sentToken()).not.toBe(first);
    expect(minted).toBe(2);
  });
});
