import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Response redaction, always on: an upstream that echoes its request (headers, URL, Basic credentials),
 * redirects with the query credential in Location, sets it in cookies, compresses its answer, or hands
 * back a minted OAuth token or a rotated-out secret. The agent sees none of them, in any spelling, and
 * the audit records how many were replaced.
 */

type Fake = Awaited<ReturnType<typeof startUpstream>>;
const REDACTED = "[redacted-by-keyward]";
const HEADER_SECRET = "sk_live_header_" + "h".repeat(24);
const QUERY_SECRET = "q_key/with+specials=" + "q".repeat(16);
const PASSWORD = "basic-password-" + "p".repeat(20);
const CLIENT_SECRET = "client-secret-" + "c".repeat(20);
const OLD_SECRET = "sk_live_old_" + "o".repeat(24);
const NEW_SECRET = "sk_live_new_" + "n".repeat(24);
let mintedToken = "";

let store: Store;
let broker: TestBroker;
let agent: { id: string; clientId: string; clientSecret: string };
const fakes: Fake[] = [];

/** Echoes the request the way debug endpoints do, in a header and in a body written in small pieces. */
function echo(req: IncomingMessage, res: ServerResponse) {
  const url = req.url ?? "";
  if (url.startsWith("/redirect")) {
    res.writeHead(302, { location: `https://upstream.example${url}`, link: `<https://upstream.example${url}>; rel="next"` });
    return res.end();
  }
  const body = JSON.stringify({ url, headers: req.headers, basic: req.headers.authorization?.split(" ")[1] ?? null });
  if (url.startsWith("/gzip")) {
    res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
    return res.end(gzipSync(body));
  }
  res.writeHead(200, {
    "content-type": "application/json",
    // `/chunked`: a length not declared, so the broker streams it rather than read it whole.
    ...(!url.startsWith("/chunked") && { "content-length": String(Buffer.byteLength(body)) }),
    "x-echo-auth": String(req.headers.authorization ?? ""),
    "set-cookie": [`seen=${encodeURIComponent(String(req.headers.authorization ?? url))}`],
  });
  // Seven-byte writes: every secret crosses several chunk boundaries.
  const bytes = Buffer.from(body);
  let at = 0;
  const next = () => {
    if (at >= bytes.length) return res.end();
    res.write(bytes.subarray(at, at + 7), () => setImmediate(next));
    at += 7;
  };
  next();
}

async function fake(handler?: Parameters<typeof startUpstream>[0]): Promise<Fake> {
  const started = await startUpstream(handler);
  fakes.push(started);
  return started;
}

async function upstreamWithToken(name: string, baseUrl: string, auth: object, secret: string, methods = ["GET"]): Promise<string> {
  const res = await broker.admin("post", "/v1/upstreams", { name, baseUrl, environment: "staging", auth, secret });
  if (res.status !== 201) throw new Error(`create upstream ${name}: ${res.status} ${res.text}`);
  await createGrant(broker, { name: `g-${name}`, agents: [agent.id], upstream: name, methods, paths: ["/**"] });
  return tokenFor(broker, agent, { grant: `g-${name}` });
}

const call = (token: string, path: string) => broker.http().get(path).set("authorization", `Bearer ${token}`).set("accept-encoding", "gzip");

/** The newest proxy.response event of a call. */
async function responseEvent(requestId: string) {
  const res = await broker.admin("get", "/v1/audit?kind=proxy.response&limit=50");
  return (res.body.events as { requestId: string; status: number; details: { redactions?: number } | null }[]).find((e) => e.requestId === requestId);
}

const everything = (res: { headers: object; text: string }) => JSON.stringify(res.headers) + res.text;

beforeAll(async () => {
  store = newStore();
  broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: "5000" });
  agent = await createAgent(broker, "redaction-agent");
});

afterAll(async () => {
  await broker?.close();
  await Promise.all(fakes.map((f) => f.close()));
  await store?.drop();
});

describe("response redaction", () => {
  it("a header credential echoed in a header, a cookie and a streamed body is replaced, and the audit counts it", async () => {
    const api = await fake(echo);
    const token = await upstreamWithToken("echo-header", api.url, { type: "header", header: "X-Api-Key", template: "{secret}" }, HEADER_SECRET);
    const res = await call(token, "/proxy/echo-header/anything");
    expect(res.status).toBe(200);
    expect(api.received.at(-1)!.headers["x-api-key"]).toBe(HEADER_SECRET); // the upstream did get it
    expect(everything(res)).not.toContain(HEADER_SECRET);
    expect(res.body.headers["x-api-key"]).toBe(REDACTED);
    // A small answer is read whole: it goes out with the length of what the agent receives.
    expect(Number(res.headers["content-length"])).toBe(Buffer.byteLength(res.text));
    const event = await responseEvent(res.headers["x-request-id"]!);
    expect(event).toMatchObject({ status: 200, details: { redactions: 1 } });
  });

  it("a body of unknown length streams through, the secret replaced across its seven-byte chunks", async () => {
    const api = await fake(echo);
    const token = await upstreamWithToken("echo-chunked", api.url, { type: "header", header: "X-Api-Key", template: "{secret}" }, HEADER_SECRET);
    const res = await call(token, "/proxy/echo-chunked/chunked");
    expect(res.status).toBe(200);
    expect(res.headers["transfer-encoding"]).toBe("chunked");
    expect(res.headers["content-length"]).toBeUndefined();
    expect(everything(res)).not.toContain(HEADER_SECRET);
    expect(res.body.headers["x-api-key"]).toBe(REDACTED);
    const event = await responseEvent(res.headers["x-request-id"]!);
    expect(event).toMatchObject({ status: 200, details: { redactions: 1 } });
  });

  it("a query credential in a 302 Location and Link, raw and percent-encoded, is replaced", async () => {
    const api = await fake(echo);
    const token = await upstreamWithToken("echo-query", api.url, { type: "query", param: "key" }, QUERY_SECRET);
    const res = await call(token, "/proxy/echo-query/redirect?page=2");
    expect(res.status).toBe(302);
    expect(api.received.at(-1)!.url).toContain(new URLSearchParams({ key: QUERY_SECRET }).toString());
    expect(res.headers.location).toBe(`https://upstream.example/redirect?page=2&key=${REDACTED}`);
    expect(res.headers.link).toContain(`key=${REDACTED}`);
    const event = await responseEvent(res.headers["x-request-id"]!);
    expect(event?.details).toEqual({ redactions: 2, names: { agent: "redaction-agent", grant: "g-echo-query" } });
    const echoed = await call(token, "/proxy/echo-query/x");
    expect(everything(echoed)).not.toContain(encodeURIComponent(QUERY_SECRET));
    expect(everything(echoed)).not.toContain(new URLSearchParams({ k: QUERY_SECRET }).toString().slice(2));
  });

  it("Basic credentials echoed as base64 and as the decoded password are replaced", async () => {
    const api = await fake((req, res) => {
      const encoded = String(req.headers.authorization).split(" ")[1]!;
      const decoded = Buffer.from(encoded, "base64").toString();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ encoded, decoded, url: Buffer.from(decoded).toString("base64url") }));
    });
    const token = await upstreamWithToken("echo-basic", api.url, { type: "basic", username: "ci-bot" }, PASSWORD);
    const res = await call(token, "/proxy/echo-basic/me");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ encoded: REDACTED, decoded: `ci-bot:${REDACTED}`, url: expect.stringContaining(REDACTED) });
    expect(res.text).not.toContain(PASSWORD);
    expect(res.text).not.toContain(Buffer.from(`ci-bot:${PASSWORD}`).toString("base64"));
  });

  it("asks for identity encoding, and decodes an upstream that compresses anyway", async () => {
    const api = await fake(echo);
    const token = await upstreamWithToken("echo-gzip", api.url, { type: "header", header: "Authorization", template: "Bearer {secret}" }, HEADER_SECRET);
    const res = await call(token, "/proxy/echo-gzip/gzip");
    expect(api.received.at(-1)!.headers["accept-encoding"]).toBe("identity");
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBeUndefined();
    expect(res.body.headers.authorization).toBe(`Bearer ${REDACTED}`);
    expect(res.text).not.toContain(HEADER_SECRET);
  });

  it("a HEAD, a 304 and a 204 of a compressed resource, which have no body to decode, come back as the upstream sent them", async () => {
    // As S3 does for an object stored with Content-Encoding: gzip, whatever the request accepts.
    const api = await fake((req, res) => {
      const status = req.url === "/not-modified" ? 304 : req.url === "/no-content" ? 204 : 200;
      res.writeHead(status, { "content-encoding": "gzip", etag: '"v1"', "x-echo-auth": String(req.headers.authorization) });
      res.end(req.method === "HEAD" || status !== 200 ? undefined : gzipSync("hello"));
    });
    const token = await upstreamWithToken("stored-gzip", api.url, { type: "header", header: "Authorization", template: "Bearer {secret}" }, HEADER_SECRET, ["GET", "HEAD"]);
    const head = await broker.http().head("/proxy/stored-gzip/object.json").set("authorization", `Bearer ${token}`);
    const notModified = await call(token, "/proxy/stored-gzip/not-modified");
    const noContent = await call(token, "/proxy/stored-gzip/no-content");
    for (const [res, status] of [[head, 200], [notModified, 304], [noContent, 204]] as const) {
      expect(res.status).toBe(status);
      expect(res.headers.etag).toBe('"v1"');
      expect(res.headers["x-echo-auth"]).toBe(`Bearer ${REDACTED}`);
    }
    expect((await call(token, "/proxy/stored-gzip/object.json")).text).toBe("hello");
  });

  it("an OAuth access token the broker minted, and the client secret, are replaced", async () => {
    mintedToken = "minted-" + createHash("sha256").update(String(Math.random())).digest("hex");
    const auth = await fake((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: mintedToken, token_type: "Bearer", expires_in: 3600 }));
    });
    const api = await fake((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`you sent ${req.headers.authorization}; my client secret is ${CLIENT_SECRET}`);
    });
    const token = await upstreamWithToken(
      "echo-oauth",
      api.url,
      { type: "oauth2-client-credentials", tokenUrl: `${auth.url}/token`, clientId: "keyward" },
      CLIENT_SECRET,
    );
    const res = await call(token, "/proxy/echo-oauth/me");
    expect(api.received.at(-1)!.headers.authorization).toBe(`Bearer ${mintedToken}`);
    expect(res.text).toBe(`you sent Bearer ${REDACTED}; my client secret is ${REDACTED}`);
  });

  it("after a rotation, the previous secret is still replaced", async () => {
    const api = await fake((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`current ${req.headers.authorization}; also still valid: ${OLD_SECRET}`);
    });
    const token = await upstreamWithToken("rotating", api.url, { type: "header", header: "Authorization", template: "Bearer {secret}" }, OLD_SECRET);
    expect((await call(token, "/proxy/rotating/a")).text).toBe(`current Bearer ${REDACTED}; also still valid: ${REDACTED}`);
    const rotated = await broker.admin("put", "/v1/upstreams/rotating/secret", { secret: NEW_SECRET });
    expect(rotated.status).toBe(200);
    const res = await call(token, "/proxy/rotating/b");
    expect(api.received.at(-1)!.headers.authorization).toBe(`Bearer ${NEW_SECRET}`);
    expect(res.text).toBe(`current Bearer ${REDACTED}; also still valid: ${REDACTED}`);
  });

  it("a response with nothing to redact is unchanged and records no redactions", async () => {
    const api = await fake();
    const token = await upstreamWithToken("plain", api.url, { type: "header", header: "Authorization", template: "Bearer {secret}" }, HEADER_SECRET);
    const res = await call(token, "/proxy/plain/x");
    expect(res.body).toEqual({ ok: true, method: "GET", url: "/x" });
    expect(res.headers["x-upstream"]).toBe("yes");
    const event = await responseEvent(res.headers["x-request-id"]!);
    expect(event).toMatchObject({ status: 200 });
    expect(event?.details?.redactions).toBeUndefined();
  });
});
