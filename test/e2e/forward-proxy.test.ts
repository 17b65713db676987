import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect as netConnect, createServer as createNetServer, type Socket } from "node:net";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { EnvHttpProxyAgent, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { caKeyContext } from "../../src/forward-proxy/ca.js";
import { placeholderValue } from "../../src/forward-proxy/placeholders.js";
import { issueHostCertificate, newRsaKeyPem } from "../../src/forward-proxy/x509.js";
import { parseMasterKey, Vault } from "../../src/vault/vault.js";
import { gitEnv, gitHttpBackend, tinyBareRepo } from "../helpers/git-http-backend.js";
import { sigV4Problem } from "../helpers/sigv4-verifier.js";
import { privateCa, startTlsUpstream } from "../helpers/tls-upstream.js";
import { startUpstream } from "../helpers/upstream.js";

const run = promisify(execFile);
const REAL_SECRET = "real-upstream-secret-forward-proxy";

/** Opens a CONNECT tunnel by hand and returns the TLS socket inside it (or the proxy's refusal). */
async function openTunnel(proxyPort: number, authority: string, proxyAuthorization: string | null, ca: string) {
  const socket = netConnect(proxyPort, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${proxyAuthorization ? `Proxy-Authorization: ${proxyAuthorization}\r\n` : ""}\r\n`);
  const head = await new Promise<string>((resolve, reject) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (text.includes("\r\n\r\n")) {
        socket.off("data", onData);
        resolve(text);
      }
    };
    socket.on("data", onData).once("error", reject);
  });
  const status = Number(head.split(" ")[1]);
  if (status !== 200) {
    socket.destroy();
    return { status, head, tls: null };
  }
  const tls = tlsConnect({ socket, servername: authority.split(":")[0], ca });
  await new Promise<void>((resolve, reject) => tls.once("secureConnect", resolve).once("error", reject));
  return { status, head, tls };
}

/** A TCP relay in front of the forward proxy that counts connections: one per tunnel a client opens. */
async function countingRelay(targetPort: number) {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    connections++;
    const upstream = netConnect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => socket.destroy()).once("close", () => (sockets.delete(socket), client.destroy(), upstream.destroy()));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends raw bytes on a tunnel and reads one response (Content-Length framed). */
/** The body of a chunked response, its chunk framing removed. */
function dechunk(body: Buffer): string {
  let out = "";
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf("\r\n", at);
    if (lineEnd === -1) return out;
    const size = parseInt(body.subarray(at, lineEnd).toString("latin1"), 16);
    if (!size) return out;
    out += body.subarray(lineEnd + 2, lineEnd + 2 + size).toString("utf8");
    at = lineEnd + 2 + size + 2;
  }
}

function exchange(tls: TLSSocket, raw: string): Promise<{ status: number; headers: string; body: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const done = (closed: boolean) => {
      const text = buffer.toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) return closed ? reject(new Error(`closed without a response: ${text}`)) : undefined;
      const headers = text.slice(0, end);
      const body = buffer.subarray(Buffer.byteLength(text.slice(0, end + 4)));
      // A redacted response is chunked (its length may change): it ends with the last chunk.
      const chunked = /transfer-encoding: chunked/i.test(headers);
      const length = chunked ? body.indexOf("0\r\n\r\n") : Number(/content-length: (\d+)/i.exec(headers)?.[1] ?? 0);
      if (chunked ? length === -1 || (length > 0 && body.indexOf("\r\n0\r\n\r\n") === -1) : body.length < length) {
        if (!closed) return;
      }
      tls.off("data", onData);
      tls.off("close", onClose);
      const text2 = chunked ? dechunk(body) : body.subarray(0, length).toString("utf8");
      resolve({ status: Number(headers.split(" ")[1]), headers, body: text2, closed });
    };
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      done(false);
    };
    const onClose = () => done(true);
    tls.on("data", onData).once("close", onClose);
    tls.write(raw);
  });
}

describe("forward proxy (transparent mode)", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startTlsUpstream>>;
  let proxyPort: number;
  let caPem: string;
  let caFile: string;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let authority: string;
  let gitServer: Awaited<ReturnType<typeof startTlsUpstream>>;
  let plainServer: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    upstream = await startTlsUpstream();
    plainServer = await startUpstream();
    gitServer = await startTlsUpstream((req, res) => {
      // Git's smart-HTTP ref advertisement, all `git ls-remote` needs (protocol v0, pkt-lines).
      const pkt = (line: string) => (line.length + 4).toString(16).padStart(4, "0") + line;
      const commit = "1".repeat(40);
      res.writeHead(200, { "content-type": "application/x-git-upload-pack-advertisement", "cache-control": "no-cache" });
      res.end(pkt("# service=git-upload-pack\n") + "0000" + pkt(`${commit} HEAD\0side-band-64k symref=HEAD:refs/heads/main\n`) + pkt(`${commit} refs/heads/main\n`) + "0000");
    });
    store = newStore();
    broker = await startBroker(store, { KEYWARD_FORWARD_PROXY_PORT: "0" });
    proxyPort = broker.keyward.forwardProxy!.address().port;
    authority = `localhost:${upstream.port}`;
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: REAL_SECRET, tls: { ca: upstream.caPem } } as never);
    await createUpstream(broker, { name: "git", baseUrl: gitServer.url, environment: "staging", secret: "real-git-secret", tls: { ca: gitServer.caPem } } as never);
    await createUpstream(broker, { name: "plain", baseUrl: `${plainServer.url}/base`, environment: "staging", secret: "real-plain-secret" });
    agent = await createAgent(broker, "coder");
    await createGrant(broker, { name: "plain-read", upstream: "plain", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    await createGrant(broker, { name: "read", upstream: "api", methods: ["GET", "POST"], paths: ["/repos/**"], agents: [agent.id] });
    await createGrant(broker, { name: "git-read", upstream: "git", methods: ["GET"], paths: ["/org/**"], agents: [agent.id] });
    const ca = await broker.http().get("/v1/forward-proxy/ca.pem");
    caPem = ca.text;
    caFile = join(store.dataDir, "keyward-ca.pem");
    writeFileSync(caFile, caPem);
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await gitServer?.close();
    await plainServer?.close();
    await store?.drop();
  });

  const token = () => tokenFor(broker, agent, { grant: "read" });
  const basicFor = (t: string) => "Basic " + Buffer.from(`agent:${t}`).toString("base64");

  it("serves its CA certificate publicly, and the upstream view shows only the private CA's fingerprint", async () => {
    expect(caPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const view = await broker.admin("get", "/v1/upstreams/api");
    expect(view.body.tls.ca.set).toBe(true);
    expect(JSON.stringify(view.body)).not.toContain("BEGIN CERTIFICATE");
  });

  it("its routes on the main app are API routes: access-logged, and unstorable text in their input is refused", async () => {
    const ca = await broker.http().get("/v1/forward-proxy/ca.pem");
    await vi.waitFor(() =>
      expect(broker.logs.some((line) => line.includes('"request completed"') && line.includes(ca.headers["x-request-id"] as string))).toBe(true),
    );
    const nul = await broker.http().get("/v1/forward-proxy/env?upstream=%00");
    expect([nul.status, nul.body.error.code]).toEqual([400, "validation_failed"]);
  });

  it("curl: the upstream receives the real credential, never the agent's token", async () => {
    const t = await token();
    const before = upstream.received.length;
    const { stdout } = await run("curl", [
      "-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`,
      "--cacert", caFile, "-H", "Authorization: token ghp_placeholder", `https://${authority}/repos/x?y=1`,
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, url: "/repos/x?y=1" });
    const got = upstream.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.headers.authorization).toBe(`Bearer ${REAL_SECRET}`);
    expect(JSON.stringify(got[0]!.headers)).not.toContain(t.slice(-20));
  });

  it("curl: a call the grant denies is refused by Keyward and never reaches the upstream", async () => {
    const t = await token();
    const before = upstream.received.length;
    const { stdout } = await run("curl", [
      "-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`,
      "--cacert", caFile, "-X", "DELETE", "-w", "\n%{http_code}", `https://${authority}/repos/x`,
    ]);
    const [body, status] = stdout.split("\n");
    expect(status).toBe("403");
    expect(JSON.parse(body!).error.code).toBe("method_not_granted");
    expect(upstream.received.length).toBe(before);
  });

  it("curl: a GraphQL mutation the grant refuses never reaches the upstream; a query does; both are audited like /proxy/ calls", async () => {
    await createUpstream(broker, { name: "gql", baseUrl: `${upstream.url}/gql`, environment: "staging", secret: "real-gql-secret", protocol: "graphql", tls: { ca: upstream.caPem } } as never);
    await createGrant(broker, { name: "gql-read", upstream: "gql", methods: ["POST"], paths: ["/v2"], agents: [agent.id], graphql: { allow: [{ operation: "query" }], deny: [{ field: "*Delete" }] } });
    const t = await tokenFor(broker, agent, { grant: "gql-read" });
    const post = (query: string) =>
      run("curl", [
        "-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`, "--cacert", caFile,
        "-H", "content-type: application/json", "--data", JSON.stringify({ query }), "-w", "\n%{http_code}", `https://${authority}/gql/v2`,
      ]).then(({ stdout }) => ({ status: stdout.split("\n").at(-1), body: stdout.split("\n").slice(0, -1).join("\n") }));
    const before = upstream.received.length;
    const mutation = await post('mutation { volumeDelete(volumeId: "vol-1") }');
    expect(mutation.status).toBe("403");
    expect(upstream.received.length).toBe(before);
    expect((await post("{ volumes { id } }")).status).toBe("200");
    const got = upstream.received.slice(before);
    expect(got.map((r) => [r.url, r.headers.authorization])).toEqual([["/gql/v2", "Bearer real-gql-secret"]]);
    const jti = JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()).jti as string;
    const audit = await broker.admin("get", `/v1/audit?jti=${jti}&kind=proxy`);
    const events = (audit.body.events as { decision: string; upstream: string; agentId: string; reason: string }[]).map((e) => [e.decision, e.upstream, e.agentId, e.reason]);
    expect(events).toEqual(
      expect.arrayContaining([
        ["deny", "gql", agent.id, "deny_rule"],
        ["allow", "gql", agent.id, "POST /v2; graphql.allow[0] query volumes"],
      ]),
    );
  });

  it("malformed forward-proxy requests get their own codes before any credential is looked at", async () => {
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = netConnect(proxyPort, "127.0.0.1", () => socket.write(text));
        let got = "";
        socket.on("data", (chunk: Buffer) => (got += chunk.toString("latin1"))).once("close", () => resolve(got)).once("error", reject);
      });
    const codeOf = (answer: string) => [Number(answer.split(" ")[1]), /\r\nkeyward-error: (\S+)/i.exec(answer)?.[1]];
    expect(codeOf(await raw("CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n\r\n"))).toEqual([400, "invalid_connect_target"]);
    expect(codeOf(await raw(`GET https://${authority}/repos/x HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`))).toEqual([400, "use_connect"]);
    expect(codeOf(await raw(`GET /repos/x HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`))).toEqual([400, "absolute_form_required"]);
    expect(codeOf(await raw(`GET http://${authority}/repos/x HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`))).toEqual([
      400,
      "upgrade_not_supported",
    ]);
  });

  it("no or bad credentials: 407 with Proxy-Authenticate, nothing forwarded", async () => {
    const before = upstream.received.length;
    const none = await openTunnel(proxyPort, authority, null, caPem);
    expect(none.status).toBe(407);
    expect(none.head.toLowerCase()).toContain("proxy-authenticate: basic");
    const bad = await openTunnel(proxyPort, authority, "Bearer not.a.token", caPem);
    expect(bad.status).toBe(407);
    // A plain http:// request too, also with a Basic password that is no token.
    for (const user of [[], ["--proxy-user", "agent:not-a-token"]]) {
      const { stdout } = await run("curl", ["-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, ...user, "-D", "-", "-o", "/dev/null", `http://${authority}/repos/x`]);
      expect(stdout).toMatch(/^HTTP\/1\.1 407 /);
      expect(stdout.toLowerCase()).toContain("proxy-authenticate: basic");
    }
    expect(upstream.received.length).toBe(before);
  });

  it("a host no upstream names is refused (403, audited); so is another port of a named host", async () => {
    const t = await token();
    const other = await openTunnel(proxyPort, "example.com:443", `Bearer ${t}`, caPem);
    expect(other.status).toBe(403);
    expect(other.head).toContain("forward_host_not_allowed");
    const otherPort = await openTunnel(proxyPort, "localhost:22", `Bearer ${t}`, caPem);
    expect(otherPort.status).toBe(403);
    const audit = await broker.admin("get", "/v1/audit?decision=deny");
    expect(JSON.stringify(audit.body)).toContain("no upstream for https://example.com:443");
    // Refused before the main proxy route, the event has the code as its reason, like the proxy's, and names the agent and grant.
    const refused = (audit.body.events as { reason: string; details: { reason: string } }[]).find((e) => e.details.reason.includes("https://example.com:443"));
    expect(refused).toMatchObject({ reason: "forward_host_not_allowed", details: { names: { agent: "coder", grant: "read" } } });
  });

  it("a host's certificate is issued once and cached: the next tunnel to it presents the same one", async () => {
    const t = await token();
    const serials = [];
    for (let i = 0; i < 2; i++) {
      const { tls } = await openTunnel(proxyPort, authority, `Bearer ${t}`, caPem);
      serials.push(tls!.getPeerCertificate().serialNumber);
      tls!.destroy();
    }
    expect(serials[0]).toMatch(/^[0-9A-F]+$/);
    expect(serials[1]).toBe(serials[0]);
  });

  it("keep-alive inside a tunnel; a revocation stops the very next call in the same open tunnel", async () => {
    const t = await token();
    const { tls } = await openTunnel(proxyPort, authority, basicFor(t), caPem);
    const get = `GET /repos/a HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
    const first = await exchange(tls!, get);
    expect(first.status).toBe(200);
    const second = await exchange(tls!, get);
    expect(second.status).toBe(200);
    const before = upstream.received.length;
    const jti = JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()).jti as string;
    expect((await broker.admin("post", "/v1/revocations", { jti, reason: "test" })).status).toBe(201);
    const third = await exchange(tls!, get);
    expect(third.status).toBe(401);
    expect(third.body).toContain("token_revoked");
    expect(upstream.received.length).toBe(before);
    tls!.destroy();
  });

  it("inside one tunnel, the /proxy/ route's budget and response redaction apply: an echoed credential is redacted, the call over budget refused", async () => {
    const echo = await startTlsUpstream((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ youSent: req.headers.authorization }));
    });
    try {
      const secret = "real-echo-secret-" + "e".repeat(24);
      await createUpstream(broker, { name: "echo", baseUrl: echo.url, environment: "staging", secret, tls: { ca: echo.caPem } } as never);
      await createGrant(broker, { name: "echo-two", upstream: "echo", methods: ["GET"], paths: ["/**"], agents: [agent.id], budgets: { perToken: { maxCalls: 2 } } });
      const t = await tokenFor(broker, agent, { grant: "echo-two" });
      const echoAuthority = `localhost:${echo.port}`;
      const { tls } = await openTunnel(proxyPort, echoAuthority, `Bearer ${t}`, caPem);
      const get = `GET /echo HTTP/1.1\r\nHost: ${echoAuthority}\r\n\r\n`;
      const first = await exchange(tls!, get);
      expect(first.status).toBe(200);
      expect(first.body).not.toContain(secret);
      expect(JSON.parse(first.body)).toEqual({ youSent: "Bearer [redacted-by-keyward]" });
      expect((await exchange(tls!, get)).status).toBe(200);
      const third = await exchange(tls!, get);
      expect(third.status).toBe(429);
      expect(echo.received).toHaveLength(2);
      expect(echo.received[0]!.headers.authorization).toBe(`Bearer ${secret}`);
      tls!.destroy();
    } finally {
      await broker.admin("delete", "/v1/upstreams/echo");
      await echo.close();
    }
  });

  it("no smuggling: ambiguous framing and a Host naming another origin are refused, nothing forwarded", async () => {
    const t = await token();
    const before = upstream.received.length;
    const smuggle = await openTunnel(proxyPort, authority, `Bearer ${t}`, caPem);
    const res = await exchange(
      smuggle.tls!,
      `POST /repos/a HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /repos/smuggled HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    smuggle.tls!.destroy();
    // Two lengths that disagree, and a chunk size that overflows: refused as a whole, the tail never runs.
    for (const framing of ["Content-Length: 4\r\nContent-Length: 40", "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff"]) {
      const again = await openTunnel(proxyPort, authority, `Bearer ${t}`, caPem);
      const refused = await exchange(again.tls!, `POST /repos/a HTTP/1.1\r\nHost: ${authority}\r\n${framing}\r\n\r\nGET /repos/smuggled HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      expect(refused.status).toBe(400);
      again.tls!.destroy();
    }
    const wrongHost = await openTunnel(proxyPort, authority, `Bearer ${t}`, caPem);
    const mismatch = await exchange(wrongHost.tls!, `GET /repos/a HTTP/1.1\r\nHost: example.com\r\n\r\n`);
    expect(mismatch.status).toBe(400);
    expect(mismatch.body).toContain("host_mismatch");
    wrongHost.tls!.destroy();
    expect(upstream.received.length).toBe(before);
  });

  it("Node fetch through undici's EnvHttpProxyAgent", async () => {
    const t = await token();
    const dispatcher = new EnvHttpProxyAgent({ httpsProxy: `http://agent:${t}@127.0.0.1:${proxyPort}`, noProxy: "", requestTls: { ca: caPem } });
    try {
      const before = upstream.received.length;
      const res = await undiciFetch(`https://${authority}/repos/fetch`, { dispatcher, headers: { authorization: "Bearer placeholder" } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ url: "/repos/fetch" });
      const denied = await undiciFetch(`https://${authority}/admin`, { dispatcher });
      expect(denied.status).toBe(403);
      await denied.text();
      expect(upstream.received.slice(before).map((r) => r.url)).toEqual(["/repos/fetch"]);
      expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${REAL_SECRET}`);
      // The token is revoked while undici keeps its tunnel open: the next call on it is refused, and goes nowhere.
      const jti = JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()).jti as string;
      expect((await broker.admin("post", "/v1/revocations", { jti, reason: "test" })).status).toBe(201);
      const revoked = await undiciFetch(`https://${authority}/repos/after-revocation`, { dispatcher });
      expect(revoked.status).toBe(401);
      expect(((await revoked.json()) as { error: { code: string } }).error.code).toBe("token_revoked");
      expect(upstream.received.slice(before).map((r) => r.url)).toEqual(["/repos/fetch"]);
    } finally {
      await dispatcher.close();
    }
  });

  it("Python urllib with HTTPS_PROXY and the CA bundle", async () => {
    const t = await token();
    const before = upstream.received.length;
    const script = [
      "import json, os, ssl, urllib.error, urllib.request",
      "ctx = ssl.create_default_context(cafile=os.environ['REQUESTS_CA_BUNDLE'])",
      "opener = urllib.request.build_opener(urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ctx))",
      `print(opener.open('https://${authority}/repos/py').read().decode())`,
      "try:",
      `    opener.open(urllib.request.Request('https://${authority}/repos/py', method='DELETE'))`,
      "except urllib.error.HTTPError as refused:",
      "    print(refused.code)",
    ].join("\n");
    const { stdout } = await run("python3", ["-c", script], {
      env: { PATH: process.env.PATH, HTTPS_PROXY: `http://agent:${t}@127.0.0.1:${proxyPort}`, NO_PROXY: "", REQUESTS_CA_BUNDLE: caFile },
    });
    const [allowed, denied] = stdout.trim().split("\n");
    expect(JSON.parse(allowed!)).toMatchObject({ url: "/repos/py" });
    expect(denied).toBe("403");
    expect(upstream.received.slice(before)).toHaveLength(1);
    expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${REAL_SECRET}`);
  });

  it("git ls-remote over HTTPS: refs come back, and the git server got the real credential", async () => {
    const t = await tokenFor(broker, agent, { grant: "git-read" });
    const gitEnv = { PATH: process.env.PATH, HOME: store.dataDir, GIT_TERMINAL_PROMPT: "0", HTTPS_PROXY: `http://agent:${t}@127.0.0.1:${proxyPort}`, NO_PROXY: "", GIT_SSL_CAINFO: caFile };
    const { stdout } = await run("git", ["ls-remote", `https://localhost:${gitServer.port}/org/app.git`], { env: gitEnv });
    expect(stdout).toContain(`${"1".repeat(40)}\trefs/heads/main`);
    expect(gitServer.received.at(-1)!.url).toBe("/org/app.git/info/refs?service=git-upload-pack");
    expect(gitServer.received.at(-1)!.headers.authorization).toBe("Bearer real-git-secret");
    // A repository outside the grant: git fails, and the git server never hears of it.
    const before = gitServer.received.length;
    await expect(run("git", ["ls-remote", `https://localhost:${gitServer.port}/elsewhere/app.git`], { env: gitEnv })).rejects.toMatchObject({ stderr: expect.stringContaining("403") });
    expect(gitServer.received.length).toBe(before);
  });

  /**
   * Each real client keeps its tunnel open across two calls; the upstream revokes the client's token
   * while it answers the first, so the second is refused inside the same tunnel. A TCP relay in front of
   * the forward proxy counts the tunnels, to show that no new one was opened for the refused call.
   */
  describe("a revocation stops the next call inside a tunnel the client keeps open", () => {
    const S3_REAL = { accessKeyId: "AKIAREALKEY000002", secretAccessKey: "real/secret/access/key/111111111111111111" };
    let tripwire: Awaited<ReturnType<typeof startTlsUpstream>>;
    let s3: Awaited<ReturnType<typeof startTlsUpstream>>;
    let relay: Awaited<ReturnType<typeof countingRelay>>;
    /** The token the next request to either upstream revokes before it is answered. */
    let armed: string | null = null;
    const jtiOf = (t: string) => JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()).jti as string;
    const revokingThen = (answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) => (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
      const jti = armed;
      armed = null;
      if (!jti) return answer(req, res, body);
      void broker.admin("post", "/v1/revocations", { jti, reason: "revoked mid-tunnel" }).then((revoked) => {
        if (revoked.status !== 201) throw new Error(`revocation: ${revoked.status}`);
        answer(req, res, body);
      });
    };
    const echo = (req: IncomingMessage, res: ServerResponse) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ url: req.url }));
    const gitRoot = () => join(store.dataDir, "git-repos");

    beforeAll(async () => {
      mkdirSync(join(gitRoot(), "org"), { recursive: true });
      tinyBareRepo(join(gitRoot(), "org"), "tiny.git", "tiny repository\n");
      const git = gitHttpBackend(gitRoot());
      tripwire = await startTlsUpstream(revokingThen((req, res, body) => (req.url?.startsWith("/org/") ? git(req, res, body) : echo(req, res))));
      s3 = await startTlsUpstream(revokingThen(echo));
      relay = await countingRelay(proxyPort);
      await createUpstream(broker, { name: "tripwire", baseUrl: tripwire.url, environment: "staging", secret: "real-tripwire-secret", tls: { ca: tripwire.caPem } } as never);
      await createUpstream(broker, {
        name: "tripwire-s3", baseUrl: s3.url, environment: "staging", secret: S3_REAL, tls: { ca: s3.caPem },
        auth: { type: "aws-sigv4", region: "us-east-1", service: "s3" }, placeholders: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
      } as never);
      await createGrant(broker, { name: "tripwire", upstream: "tripwire", methods: ["GET", "POST"], paths: ["/repos/**", "/org/**"], agents: [agent.id] });
      await createGrant(broker, { name: "tripwire-s3", upstream: "tripwire-s3", methods: ["PUT"], paths: ["/logs/**"], agents: [agent.id] });
    });

    afterAll(async () => {
      await relay?.close();
      for (const name of ["tripwire", "tripwire-s3"]) await broker.admin("delete", `/v1/upstreams/${name}`);
      await tripwire?.close();
      await s3?.close();
    });

    const tripwireToken = () => tokenFor(broker, agent, { grant: "tripwire" });

    it("curl: two URLs on one connection; the second, after the revocation, is refused and goes nowhere", async () => {
      const t = await tripwireToken();
      armed = jtiOf(t);
      const [before, tunnels] = [tripwire.received.length, relay.connections()];
      const { stdout } = await run("curl", [
        "-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${relay.port}`, "--proxy-user", `agent:${t}`, "--cacert", caFile,
        "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", `${tripwire.url}/repos/first`, `${tripwire.url}/repos/second`,
      ], { env: { PATH: process.env.PATH } });
      // 0 new connections for the second transfer: curl reused the tunnel.
      expect(stdout.trim().split("\n")).toEqual(["200 1", "401 0"]);
      expect(relay.connections() - tunnels).toBe(1);
      expect(tripwire.received.slice(before).map((r) => [r.url, r.headers.authorization])).toEqual([["/repos/first", "Bearer real-tripwire-secret"]]);
    });

    it("Python: http.client (urllib's transport) keeps its tunnel, and the call after the revocation is refused in it; urllib's next tunnel gets 407", async () => {
      const t = await tripwireToken();
      armed = jtiOf(t);
      const [before, tunnels] = [tripwire.received.length, relay.connections()];
      const script = [
        "import base64, http.client, os, ssl, urllib.error, urllib.request",
        "ctx = ssl.create_default_context(cafile=os.environ['REQUESTS_CA_BUNDLE'])",
        "conn = http.client.HTTPSConnection('127.0.0.1', int(os.environ['RELAY_PORT']), context=ctx)",
        "conn.set_tunnel('localhost', int(os.environ['UPSTREAM_PORT']), headers={'Proxy-Authorization': 'Basic ' + base64.b64encode(('agent:' + os.environ['TOKEN']).encode()).decode()})",
        "for path in ['/repos/first', '/repos/second']:",
        "    conn.request('GET', path)",
        "    answer = conn.getresponse()",
        "    answer.read()",
        "    print(answer.status)",
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ctx))",
        "try:",
        "    opener.open(os.environ['UPSTREAM'] + '/repos/third')",
        "except OSError as refused:",
        "    print('407' in str(refused))",
      ].join("\n");
      const { stdout } = await run("python3", ["-c", script], {
        env: {
          PATH: process.env.PATH, TOKEN: t, RELAY_PORT: String(relay.port), UPSTREAM_PORT: String(tripwire.port), UPSTREAM: tripwire.url,
          HTTPS_PROXY: `http://agent:${t}@127.0.0.1:${relay.port}`, NO_PROXY: "", REQUESTS_CA_BUNDLE: caFile,
        },
      });
      expect(stdout.trim().split("\n")).toEqual(["200", "401", "True"]);
      // One tunnel for http.client's two calls, one for urllib's CONNECT that was refused.
      expect(relay.connections() - tunnels).toBe(2);
      expect(tripwire.received.slice(before).map((r) => [r.url, r.headers.authorization])).toEqual([["/repos/first", "Bearer real-tripwire-secret"]]);
    });

    it("git clone of a tiny repository from a smart-HTTP server; revoked after the ref advertisement, the clone's next request is refused in the same tunnel", async () => {
      const clone = async (t: string, into: string) =>
        // Basic at once: by default git's libcurl first tries CONNECT without credentials, a tunnel refused (407) before the real one.
        run("git", ["-c", "http.proxyAuthMethod=basic", "clone", "-q", `${tripwire.url}/org/tiny.git`, into], {
          env: { ...gitEnv(store.dataDir), HTTPS_PROXY: `http://agent:${t}@127.0.0.1:${relay.port}`, NO_PROXY: "", GIT_SSL_CAINFO: caFile },
        }).then(
          () => "cloned",
          (err: { stderr: string }) => err.stderr,
        );
      const cloned = join(store.dataDir, "tiny-clone");
      let [before, tunnels] = [tripwire.received.length, relay.connections()];
      expect(await clone(await tripwireToken(), cloned)).toBe("cloned");
      expect(relay.connections() - tunnels).toBe(1);
      expect(readFileSync(join(cloned, "README"), "utf8")).toBe("tiny repository\n");
      const asked = tripwire.received.slice(before);
      expect(asked.map((r) => r.method)).toEqual(expect.arrayContaining(["GET", "POST"]));
      expect(new Set(asked.map((r) => r.headers.authorization))).toEqual(new Set(["Bearer real-tripwire-secret"]));

      const t = await tripwireToken();
      armed = jtiOf(t);
      [before, tunnels] = [tripwire.received.length, relay.connections()];
      // Git's answer to a 401: it would ask for a username, and may not.
      expect(await clone(t, join(store.dataDir, "tiny-revoked"))).toContain("could not read Username");
      expect(relay.connections() - tunnels).toBe(1);
      expect(tripwire.received.slice(before).map((r) => [r.method, r.url])).toEqual([["GET", "/org/tiny.git/info/refs?service=git-upload-pack"]]);
    });

    it("@aws-sdk/client-s3 with the placeholder keys over a kept-alive tunnel: re-signed with the stored key, then refused in the tunnel once revoked", async () => {
      const t = await tokenFor(broker, agent, { grant: "tripwire-s3" });
      armed = jtiOf(t);
      const [before, tunnels] = [s3.received.length, relay.connections()];
      const resolve = (name: string) => JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve(name)).href);
      const script = join(store.dataDir, "s3-kept-alive.mjs");
      writeFileSync(
        script,
        `import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { PutObjectCommand, S3Client } from ${resolve("@aws-sdk/client-s3")};
/**
 * Node's own keep-alive pool whose sockets are CONNECT tunnels through HTTPS_PROXY. (https-proxy-agent
 * opens a new tunnel for every request, so with it the call after a revocation is refused at CONNECT.)
 */
class TunnelAgent extends https.Agent {
  createConnection(options, done) {
    const proxy = new URL(process.env.HTTPS_PROXY);
    const auth = Buffer.from(decodeURIComponent(proxy.username) + ":" + decodeURIComponent(proxy.password)).toString("base64");
    const socket = net.connect(Number(proxy.port), proxy.hostname);
    const authority = options.host + ":" + options.port;
    socket.write("CONNECT " + authority + " HTTP/1.1\\r\\nHost: " + authority + "\\r\\nProxy-Authorization: Basic " + auth + "\\r\\n\\r\\n");
    let head = "";
    const onData = (chunk) => {
      head += chunk.toString("latin1");
      if (!head.includes("\\r\\n\\r\\n")) return;
      socket.off("data", onData);
      if (!head.startsWith("HTTP/1.1 200")) return done(new Error(head.split("\\r\\n")[0]));
      done(null, tls.connect({ ...options, socket, servername: options.host }));
    };
    socket.on("data", onData).once("error", done);
  }
}
// The SDK reads the placeholder keys from the environment; the tunnel trusts NODE_EXTRA_CA_CERTS.
const client = new S3Client({
  region: "us-east-1", endpoint: ${JSON.stringify(s3.url)}, forcePathStyle: true, maxAttempts: 1, requestChecksumCalculation: "WHEN_REQUIRED",
  requestHandler: { httpsAgent: new TunnelAgent({ keepAlive: true, maxSockets: 1 }) },
});
const put = (key) => client.send(new PutObjectCommand({ Bucket: "logs", Key: key, Body: key })).then(() => 200, (err) => err.$metadata?.httpStatusCode);
console.log(JSON.stringify([await put("first.txt"), await put("second.txt")]));
client.destroy();
`,
      );
      const { stdout } = await run(process.execPath, [script], {
        env: {
          PATH: process.env.PATH, HTTPS_PROXY: `http://agent:${t}@127.0.0.1:${relay.port}`, NO_PROXY: "", NODE_EXTRA_CA_CERTS: caFile,
          AWS_ACCESS_KEY_ID: placeholderValue("AWS_ACCESS_KEY_ID"), AWS_SECRET_ACCESS_KEY: placeholderValue("AWS_SECRET_ACCESS_KEY"),
        },
      });
      expect(JSON.parse(stdout)).toEqual([200, 401]);
      expect(relay.connections() - tunnels).toBe(1);
      const got = s3.received.slice(before);
      expect(got.map((r) => [r.method, r.url.split("?")[0]])).toEqual([["PUT", "/logs/first.txt"]]);
      expect(JSON.stringify(got[0]!.headers)).not.toContain("keyward-placeholder");
      expect(sigV4Problem({ ...got[0]!, body: got[0]!.rawBody }, { credentials: S3_REAL, region: "us-east-1", service: "s3" })).toBeNull();
    });
  });

  it("the CA is name-constrained to the upstreams' hosts: a certificate for any other host, even one signed with the stolen CA key, is refused by curl, Node and git", async () => {
    // What a thief of the CA key (and the master key) could do: sign certificates of their own choosing.
    const row = (await broker.keyward.db.prisma.forwardProxyCa.findFirst({ where: { retiredAt: null } }))!;
    const stolen = { certPem: row.certPem, keyPem: new Vault(parseMasterKey(store.masterKey)).decrypt(row.keyCiphertext, caKeyContext(row.id)) };
    const leafKey = newRsaKeyPem();
    const serve = async (host: string) => {
      const server = createHttpsServer({ cert: issueHostCertificate(stolen, leafKey, host, new Date(), 1), key: leafKey }, (_req, res) => res.end("impostor"));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    };
    const curl = (host: string, port: number) =>
      run("curl", ["-sS", "--noproxy", "*", "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", caFile, `https://${host}:${port}/`]).then(
        ({ stdout }) => ({ code: 0, out: stdout }),
        (err: { code: number; stderr: string }) => ({ code: err.code, out: err.stderr }),
      );
    const nodeTls = (host: string, port: number) =>
      new Promise<string>((resolve) => {
        const socket = tlsConnect({ host: "127.0.0.1", port, servername: host, ca: caPem, checkServerIdentity: () => undefined });
        socket.once("secureConnect", () => (socket.destroy(), resolve("ok"))).once("error", (err: Error) => resolve(err.message));
      });
    // git on Debian speaks TLS through GnuTLS, not OpenSSL: a second, independent check of the constraints.
    const git = (host: string, port: number) =>
      run("git", ["-c", `http.curloptResolve=${host}:${port}:127.0.0.1`, "ls-remote", `https://${host}:${port}/org/app.git`], {
        env: { PATH: process.env.PATH, HOME: store.dataDir, GIT_TERMINAL_PROMPT: "0", GIT_SSL_CAINFO: caFile },
      }).then(
        () => "ok",
        (err: { stderr: string }) => err.stderr,
      );
    const impostor = await serve("evil.example");
    const lookalike = await serve("localhost");
    try {
      // 60: curl's "peer certificate cannot be authenticated with known CA certificates".
      expect(await curl("evil.example", impostor.port)).toMatchObject({ code: 60, out: expect.stringContaining("permitted subtree violation") });
      // Node names no code for it ("UNSPECIFIED"): OpenSSL's reason is in the message.
      expect(await nodeTls("evil.example", impostor.port)).toBe("permitted subtree violation");
      // The same key signing for a host an upstream names is trusted: the constraint, not the key, refused the other.
      expect(await curl("localhost", lookalike.port)).toEqual({ code: 0, out: "impostor" });
      expect(await nodeTls("localhost", lookalike.port)).toBe("ok");
      expect(await git("evil.example", impostor.port)).toContain("server certificate verification failed");
      expect(await git("localhost", lookalike.port)).not.toContain("certificate");
    } finally {
      await impostor.close();
      await lookalike.close();
    }
  });

  it("an upstream on a new host re-issues the CA with the same key: the new certificate vouches for it, the old one still for the hosts it named", async () => {
    const ipUpstream = await startTlsUpstream();
    try {
      const t = await token();
      // The upstream names its host by IP address: an iPAddress constraint, not a DNS one.
      const ipAuthority = `127.0.0.1:${ipUpstream.port}`;
      await createUpstream(broker, { name: "by-ip", baseUrl: `https://${ipAuthority}`, environment: "staging", secret: "real-ip-secret", tls: { ca: ipUpstream.caPem } } as never);
      const reissued = (await broker.http().get("/v1/forward-proxy/ca.pem")).text;
      expect(reissued).not.toBe(caPem);
      expect((await broker.http().get("/v1/forward-proxy/ca.pem")).text).toBe(reissued);
      const refused = await openTunnel(proxyPort, ipAuthority, `Bearer ${t}`, caPem).catch((err: Error) => err.message);
      expect(refused).toBe("excluded subtree violation");
      const accepted = await openTunnel(proxyPort, ipAuthority, `Bearer ${t}`, reissued);
      expect(accepted.tls!.authorized).toBe(true);
      accepted.tls!.destroy();
      for (const trusted of [caPem, reissued]) {
        const { tls } = await openTunnel(proxyPort, authority, `Bearer ${t}`, trusted);
        expect((await exchange(tls!, `GET /repos/both HTTP/1.1\r\nHost: ${authority}\r\n\r\n`)).status).toBe(200);
        tls!.destroy();
      }
    } finally {
      await broker.admin("delete", "/v1/upstreams/by-ip");
      await ipUpstream.close();
    }
  });

  it("plain http:// through absolute-form requests, matched under the upstream's base path", async () => {
    const t = await tokenFor(broker, agent, { grant: "plain-read" });
    const before = plainServer.received.length;
    const { stdout } = await run("curl", ["-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`, `${plainServer.url}/base/items?x=1`]);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, url: "/base/items?x=1" });
    const outside = await run("curl", ["-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`, "-w", "\n%{http_code}", `${plainServer.url}/elsewhere`]);
    expect(outside.stdout.split("\n")[1]).toBe("403");
    const got = plainServer.received.slice(before);
    expect(got.map((r) => r.url)).toEqual(["/base/items?x=1"]);
    expect(got[0]!.headers.authorization).toBe("Bearer real-plain-secret");
    expect(got[0]!.headers["proxy-authorization"]).toBeUndefined();
  });

  it("a private CA is write-once like a secret: changing it needs the secret in the same request", async () => {
    const other = privateCa();
    const refused = await broker.admin("patch", "/v1/upstreams/api", { tls: { ca: other.certPem } });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain("needs the secret");
    expect((await broker.admin("patch", "/v1/upstreams/api", { tls: { ca: "not a pem" }, secret: REAL_SECRET })).status).toBe(400);
    // An upstream whose certificate does not chain to the CA it trusts is not called.
    const wrong = await broker.admin("patch", "/v1/upstreams/api", { tls: { ca: other.certPem }, secret: REAL_SECRET });
    expect(wrong.status).toBe(200);
    const t = await token();
    const before = upstream.received.length;
    const { stdout } = await run("curl", ["-sS", "--noproxy", "", "--proxy", `http://127.0.0.1:${proxyPort}`, "--proxy-user", `agent:${t}`, "--cacert", caFile, "-w", "\n%{http_code}", `https://${authority}/repos/x`]);
    expect(stdout.split("\n")[1]).toBe("502");
    expect(upstream.received.length).toBe(before);
    expect((await broker.admin("patch", "/v1/upstreams/api", { tls: { ca: upstream.caPem }, secret: REAL_SECRET })).status).toBe(200);
  });

  it("the CA key is stored encrypted; a rotation issues from a new CA that clients must fetch", async () => {
    const rows = await broker.keyward.db.prisma.forwardProxyCa.findMany();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.keyCiphertext).toMatch(/^v1\./);
    expect(JSON.stringify(rows)).not.toContain("PRIVATE KEY");
    expect((await broker.http().post("/v1/forward-proxy/ca/rotate")).status).toBe(401);
    const rotated = await broker.admin("post", "/v1/forward-proxy/ca/rotate");
    expect(rotated.status).toBe(201);
    const served = (await broker.http().get("/v1/forward-proxy/ca.pem")).text;
    expect(served).toBe(rotated.body.certificate);
    expect(served).not.toBe(caPem);
    const t = await token();
    // A client that still trusts only the old CA refuses the proxy's certificate.
    const old = await openTunnel(proxyPort, authority, `Bearer ${t}`, caPem).catch((err: Error) => err);
    expect(old).toBeInstanceOf(Error);
    const fresh = await openTunnel(proxyPort, authority, `Bearer ${t}`, served);
    expect((await exchange(fresh.tls!, `GET /repos/rotated HTTP/1.1\r\nHost: ${authority}\r\n\r\n`)).status).toBe(200);
    fresh.tls!.destroy();
  });

  it("a client that sends its headers too slowly inside a tunnel is cut off (408), as on the main port", async () => {
    const slowStore = newStore();
    const slow = await startBroker(slowStore, { KEYWARD_FORWARD_PROXY_PORT: "0", KEYWARD_HEADERS_TIMEOUT_MS: "1000", KEYWARD_REQUEST_TIMEOUT_MS: "2000" });
    try {
      await createUpstream(slow, { name: "api", baseUrl: upstream.url, environment: "staging", secret: REAL_SECRET, tls: { ca: upstream.caPem } } as never);
      const a = await createAgent(slow, "slow");
      await createGrant(slow, { name: "read", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [a.id] });
      const t = await tokenFor(slow, a, { grant: "read" });
      const ca = (await slow.http().get("/v1/forward-proxy/ca.pem")).text;
      const { tls } = await openTunnel(slow.keyward.forwardProxy!.address().port, authority, `Bearer ${t}`, ca);
      const started = Date.now();
      const res = await exchange(tls!, `GET /repos/a HTTP/1.1\r\nHost: ${authority}\r\nX-Slow: `);
      expect(res.status).toBe(408);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await slow.close();
      await slowStore.drop();
    }
  });
});
