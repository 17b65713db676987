import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startTlsUpstream } from "../helpers/tls-upstream.js";
import { statusOf, title } from "./cases.js";

const HEADERS_TIMEOUT_MS = 500;

/** What an agent holding a valid token can do to a CONNECT tunnel once the proxy has answered 200. */
describe("security: CONNECT tunnels of the forward proxy", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startTlsUpstream>>;
  let proxyPort: number;
  let token: string;
  let agentId: string;
  let caPem: string;
  let authority: string;

  beforeAll(async () => {
    // An upstream that takes twice the headers timeout to answer /slow: a call in progress is not a silent tunnel.
    upstream = await startTlsUpstream((req, res) => {
      setTimeout(() => res.end(JSON.stringify({ url: req.url })), req.url === "/slow" ? 2 * HEADERS_TIMEOUT_MS : 0);
    });
    store = newStore();
    broker = await startBroker(store, {
      KEYWARD_FORWARD_PROXY_PORT: "0",
      KEYWARD_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      KEYWARD_REQUEST_TIMEOUT_MS: String(4 * HEADERS_TIMEOUT_MS),
    });
    proxyPort = broker.keyward.forwardProxy!.address().port;
    authority = `localhost:${upstream.port}`;
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "tunnel-secret", tls: { ca: upstream.caPem } } as never);
    const agent = await createAgent(broker, "tunneller");
    await createGrant(broker, { name: "read", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    token = await tokenFor(broker, agent, { grant: "read" });
    agentId = agent.id;
    caPem = (await broker.http().get("/v1/forward-proxy/ca.pem")).text;
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  /** A CONNECT the proxy accepts: the raw socket, right after its 200. */
  async function connected(): Promise<Socket> {
    const socket = netConnect(proxyPort, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Bearer ${token}\r\n\r\n`);
    const head = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    expect(head).toBe("HTTP/1.1 200 Connection Established\r\n\r\n");
    return socket;
  }

  async function handshaken(): Promise<TLSSocket> {
    const tls = tlsConnect({ socket: await connected(), servername: "localhost", ca: caPem });
    await new Promise<void>((resolve, reject) => tls.once("secureConnect", resolve).once("error", reject));
    return tls;
  }

  /** How long until the proxy closes the socket; null if it is still open after `withinMs`. */
  const closedAfter = (socket: Socket, withinMs: number) =>
    new Promise<number | null>((resolve) => {
      const started = Date.now();
      // Read, so that the proxy's FIN is seen (a paused socket never ends).
      socket.resume();
      const timer = setTimeout(() => resolve(null), withinMs);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    });

  it(title("REQ-44"), async () => {
    const limit = 6 * HEADERS_TIMEOUT_MS;

    // No ClientHello at all.
    const silent = async () => closedAfter(await connected(), limit);

    // A ClientHello of 16 KiB announced (record and handshake headers), then its bytes trickled one every
    // 100 ms: never silent for long, never done.
    const trickled = async () => {
      const socket = await connected();
      socket.on("error", () => {});
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc]));
      const trickle = setInterval(() => socket.writable && socket.write(Buffer.from([0x00])), 100);
      try {
        return await closedAfter(socket, limit);
      } finally {
        clearInterval(trickle);
      }
    };

    // The handshake finished, and then no request: answered as headers too slow are.
    let idleAnswer = "";
    const idle = async () => {
      const tls = await handshaken();
      tls.on("data", (chunk: Buffer) => (idleAnswer += chunk.toString("latin1")));
      return closedAfter(tls, limit);
    };

    // Before the fix: all three still open after 3 s, and for ever.
    const closed = await Promise.all([silent(), trickled(), idle()]);
    expect(closed.map((ms) => ms !== null)).toEqual([true, true, true]);
    expect([idleAnswer.split(" ")[1], /\r\nkeyward-error: (\S+)/i.exec(idleAnswer)?.[1]]).toEqual(["408", "request_timeout"]);
  });

  it("a tunnel whose request is in progress is not cut: a slow upstream answer, then the next request on the same tunnel", async () => {
    const tls = await handshaken();
    const got: string[] = [];
    tls.on("data", (chunk: Buffer) => got.push(chunk.toString("utf8")));
    const closed = closedAfter(tls, 6 * HEADERS_TIMEOUT_MS);
    tls.write(`GET /slow HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 4 * HEADERS_TIMEOUT_MS));
    tls.write(`GET /fast HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    expect(await closed).not.toBeNull();
    const text = got.join("");
    expect(text.split("HTTP/1.1 200 OK\r\n")).toHaveLength(3);
    expect(text).toContain('{"url":"/slow"}');
    expect(text).toContain('{"url":"/fast"}');
  });

  it(title("REQ-45"), async () => {
    const jti = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;
    const before = upstream.received.length;
    const refused: [string, string][] = [
      [`GET /a HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`, "host_mismatch"],
      [`GET https://other.example/a HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`, "invalid_request_target"],
      [`GET /a HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, "upgrade_not_supported"],
    ];
    for (const [request, code] of refused) {
      const tls = await handshaken();
      let answer = "";
      tls.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
      const closed = closedAfter(tls, 5_000);
      tls.write(request);
      expect(await closed).not.toBeNull();
      expect([answer.split(" ")[1], /\r\nkeyward-error: (\S+)/i.exec(answer)?.[1]]).toEqual([String(statusOf("REQ-45")), code]);
    }
    expect(upstream.received.length).toBe(before);

    const audit = await broker.admin("get", "/v1/audit?decision=deny");
    const events = (audit.body.events as { reason: string; actor: string; agentId: string | null; jti: string | null; grantId: string | null }[]).filter((e) =>
      refused.some(([, code]) => code === e.reason),
    );
    // Before the fix: actor "anonymous", agentId, jti and grantId null, though the tunnel was opened with a valid token.
    expect(events.map((e) => [e.reason, e.actor, e.agentId, e.jti, e.grantId !== null]).sort()).toEqual(
      refused.map(([, code]) => [code, `agent:${agentId}`, agentId, jti, true]).sort(),
    );
  });

  it(title("REQ-73"), async () => {
    const origin = `https://${authority}`;
    const refused: [string, string, string][] = [
      [`GET /req-73/host HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`, "host_mismatch", `${origin}/req-73/host`],
      [`GET https://other.example/req-73/target HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`, "invalid_request_target", "https://other.example/req-73/target"],
      [`GET /req-73/upgrade HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, "upgrade_not_supported", `${origin}/req-73/upgrade`],
    ];
    for (const [request] of refused) {
      const tls = await handshaken();
      const closed = closedAfter(tls, 5_000);
      tls.write(request);
      expect(await closed).not.toBeNull();
    }
    const audit = await broker.admin("get", "/v1/audit?decision=deny");
    const events = (audit.body.events as { reason: string; path: string; details: { tunnel?: string } }[]).filter((e) => e.path.includes("/req-73/"));
    // Before the fix: the path as sent ("/req-73/host"), and nothing said which tunnel it came through.
    expect(events.map((e) => [e.reason, e.path, e.details.tunnel]).sort()).toEqual(refused.map(([, code, path]) => [code, path, origin]).sort());
  });
});
