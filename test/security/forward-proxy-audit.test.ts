import { connect as netConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { statusOf, title } from "./cases.js";

/**
 * Agent tokens and other credentials appear in no audit row (SEC-01). The forward proxy is an agent's way
 * out to any host: a request it refuses (a host no upstream names) may carry a credential in its query,
 * and its event records the target without it, as the main port's events and log lines do.
 */
describe("security: what the forward proxy audits of a refused request", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let proxyPort: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_FORWARD_PROXY_PORT: "0" });
    proxyPort = broker.keyward.forwardProxy!.address().port;
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "fp-query-secret" });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = netConnect(proxyPort, "127.0.0.1", () => socket.write(text));
      let got = "";
      socket.on("data", (c: Buffer) => (got += c.toString("latin1"))).once("close", () => resolve(got)).once("error", reject);
    });

  it(title("SEC-04"), async () => {
    const agent = await createAgent(broker, "fp-agent");
    await createGrant(broker, { name: "fp-grant", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    const token = await tokenFor(broker, agent, { grant: "fp-grant" });

    // GET http://other.example/search?access_token=<the agent's token>, through the forward proxy.
    const answer = await raw(
      `GET http://other.example/search?access_token=${token} HTTP/1.1\r\nHost: other.example\r\n` +
        `Proxy-Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
    );
    expect(answer.startsWith(`HTTP/1.1 ${statusOf("SEC-04")} `)).toBe(true);

    const audit = await broker.admin("get", "/v1/audit?decision=deny");
    expect(audit.status).toBe(200);
    const refusal = (audit.body.events as { reason: string; path?: string }[]).find((e) => e.reason === "forward_host_not_allowed");
    expect(refusal).toBeDefined();
    // Before the fix: the path was "http://other.example/search?access_token=<token>".
    expect(refusal!.path).toBe("http://other.example/search");
    expect(JSON.stringify(audit.body)).not.toContain(token);
  });

  it(title("SEC-08"), async () => {
    const agent = await createAgent(broker, "fp-userinfo-agent");
    await createGrant(broker, { name: "fp-userinfo-grant", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    const token = await tokenFor(broker, agent, { grant: "fp-userinfo-grant" });
    const host = new URL(upstream.url).host;
    const before = upstream.received.length;

    const refusals: [string, string, string][] = [
      [`GET http://user:fp-password-1@${host}/x HTTP/1.1\r\nHost: ${host}\r\n`, "absolute_form_required", `http://${host}/x`],
      // An @ of the password's own, unescaped: everything up to the authority's last @ is userinfo.
      [`GET http://user:fp@password-2@other.example/x HTTP/1.1\r\nHost: other.example\r\n`, "absolute_form_required", "http://other.example/x"],
      [`CONNECT user:fp-password-3@${host} HTTP/1.1\r\nHost: ${host}\r\n`, "invalid_connect_target", host],
    ];
    for (const [request, code] of refusals) {
      const answer = await raw(`${request}Proxy-Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
      expect([answer.split(" ")[1], /\r\nkeyward-error: (\S+)/i.exec(answer)?.[1]]).toEqual([String(statusOf("SEC-08")), code]);
    }
    expect(upstream.received.length).toBe(before);

    // Refused for their form, before any credential is looked at: anonymous events.
    const audit = await broker.admin("get", "/v1/audit?decision=deny");
    expect(audit.status).toBe(200);
    const events = (audit.body.events as { reason: string; path?: string }[]).filter((e) => refusals.some(([, code]) => code === e.reason));
    // Before the fix: each path kept "user:fp-password-…@".
    expect(events.map((e) => [e.reason, e.path]).sort()).toEqual(refusals.map(([, code, path]) => [code, path]).sort());
    expect(JSON.stringify(audit.body)).not.toContain("password");
  });
});
