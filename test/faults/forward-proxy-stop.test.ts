import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startTlsUpstream } from "../helpers/tls-upstream.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "../security/cases.js";

const SLOW_MS = 1_500;

/** A stop (what SIGTERM runs) while calls go through the forward proxy, in a tunnel and as plain HTTP. */
describe("faults: stopping the broker with forward-proxy calls in flight", () => {
  let store: Store;
  let broker: TestBroker;
  let tlsUpstream: Awaited<ReturnType<typeof startTlsUpstream>>;
  let plainUpstream: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    tlsUpstream = await startTlsUpstream((req, res) => setTimeout(() => res.end(`done ${req.url}`), SLOW_MS));
    plainUpstream = await startUpstream((req, res) => setTimeout(() => res.end(`done ${req.url}`), SLOW_MS));
    store = newStore();
    broker = await startBroker(store, { KEYWARD_FORWARD_PROXY_PORT: "0" });
  });

  afterAll(async () => {
    await tlsUpstream?.close();
    await plainUpstream?.close();
    await store?.drop();
  });

  /** Everything the proxy sends on the socket until it closes it. */
  const untilClosed = (socket: Socket) =>
    new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (chunk: Buffer) => (got += chunk.toString("latin1"))).on("error", () => {});
      socket.once("close", () => resolve(got));
    });

  it(title("FLT-30"), async () => {
    await createUpstream(broker, { name: "api", baseUrl: tlsUpstream.url, environment: "staging", secret: "stop-secret", tls: { ca: tlsUpstream.caPem } } as never);
    await createUpstream(broker, { name: "plain", baseUrl: plainUpstream.url, environment: "staging", secret: "stop-plain-secret" });
    const agent = await createAgent(broker, "stopping");
    await createGrant(broker, { name: "tls", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    await createGrant(broker, { name: "plain", upstream: "plain", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    const tlsToken = await tokenFor(broker, agent, { grant: "tls" });
    const plainToken = await tokenFor(broker, agent, { grant: "plain" });
    const ca = (await broker.http().get("/v1/forward-proxy/ca.pem")).text;
    const proxyPort = broker.keyward.forwardProxy!.address().port;
    const authority = `localhost:${tlsUpstream.port}`;

    const tunnel = async () => {
      const socket = netConnect(proxyPort, "127.0.0.1");
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Bearer ${tlsToken}\r\n\r\n`);
      await new Promise((resolve) => socket.once("data", resolve));
      const tls = tlsConnect({ socket, servername: "localhost", ca });
      await new Promise<void>((resolve, reject) => tls.once("secureConnect", resolve).once("error", reject));
      return tls;
    };

    // A call in a tunnel, a plain one, and a tunnel with nothing in flight.
    const inTunnel = await tunnel();
    const tunnelled = untilClosed(inTunnel);
    inTunnel.write(`GET /in-tunnel HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    const plainSocket = netConnect(proxyPort, "127.0.0.1");
    await new Promise<void>((resolve) => plainSocket.once("connect", resolve));
    const plain = untilClosed(plainSocket);
    plainSocket.write(`GET ${plainUpstream.url}/plain HTTP/1.1\r\nHost: ${new URL(plainUpstream.url).host}\r\nProxy-Authorization: Bearer ${plainToken}\r\n\r\n`);
    const idle = untilClosed(await tunnel());
    while (tlsUpstream.received.length + plainUpstream.received.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));

    const started = Date.now();
    await broker.close();
    // Before the fix: the stop took a few milliseconds and both clients got nothing, though both upstreams had the call.
    expect(Date.now() - started).toBeGreaterThan(SLOW_MS / 2);
    for (const [answer, url] of [[await tunnelled, "/in-tunnel"], [await plain, "/plain"]] as const) {
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(answer.endsWith(`done ${url}`)).toBe(true);
    }
    expect(await idle).toBe("");
  });
});
