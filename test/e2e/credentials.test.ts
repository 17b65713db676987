import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { sigV4Problem } from "../helpers/sigv4-verifier.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Each credential kind against a local server that checks the credential the way the real service
 * would: Basic auth, SigV4 recomputed by an independent implementation, an OAuth token endpoint with
 * expiring tokens, a GitHub-shaped API that verifies the app JWT with the app's public key.
 */

type Fake = Awaited<ReturnType<typeof startUpstream>>;
const MAX_BODY = 4096;

let store: Store;
let broker: TestBroker;
let agent: { id: string; clientId: string; clientSecret: string };
const fakes: Fake[] = [];
/** Every response an agent saw, and every secret or upstream token in play: none may show up in them. */
const agentSaw: string[] = [];
const secrets: string[] = [];

beforeAll(async () => {
  store = newStore();
  broker = await startBroker(store, { KEYWARD_PROXY_MAX_BODY_BYTES: String(MAX_BODY), KEYWARD_UPSTREAM_TIMEOUT_MS: "5000" });
  agent = await createAgent(broker, "credentials-agent");
});

afterAll(async () => {
  await broker?.close();
  await Promise.all(fakes.map((f) => f.close()));
  await store?.drop();
});

async function fake(handler: Parameters<typeof startUpstream>[0]): Promise<Fake> {
  const started = await startUpstream(handler);
  fakes.push(started);
  return started;
}

/** An upstream with this credential, a grant on it for the test agent, and a token under that grant. */
async function upstreamFor(
  name: string,
  baseUrl: string,
  auth: object,
  secret: string | Record<string, string>,
  grant: { methods?: string[]; paths?: string[] } = {},
): Promise<string> {
  const res = await broker.admin("post", "/v1/upstreams", { name, baseUrl, environment: "staging", auth, secret });
  if (res.status !== 201) throw new Error(`create upstream ${name}: ${res.status} ${res.text}`);
  agentSaw.push(res.text);
  return grantOn(name, `g-${name}`, grant);
}

async function grantOn(upstream: string, name: string, grant: { methods?: string[]; paths?: string[] }): Promise<string> {
  await createGrant(broker, {
    name,
    agents: [agent.id],
    upstream,
    methods: grant.methods ?? ["GET", "HEAD", "POST", "PUT", "DELETE"],
    paths: grant.paths ?? ["/**"],
  });
  return tokenFor(broker, agent, { grant: name });
}

function call(token: string, method: "get" | "post" | "put" | "delete", path: string) {
  return broker.http()[method](path).set("authorization", `Bearer ${token}`);
}

/** Sends the request and records what the agent saw. */
async function seen(request: ReturnType<typeof call>) {
  const res = await request;
  agentSaw.push(JSON.stringify(res.headers), res.text ?? "");
  return res;
}

describe("basic", () => {
  const PASSWORD = "basic-pass-" + randomBytes(8).toString("hex");
  let api: Fake;
  let token: string;

  beforeAll(async () => {
    secrets.push(PASSWORD);
    const expected = "Basic " + Buffer.from(`ci-bot@example.com:${PASSWORD}`).toString("base64");
    api = await fake((req, res) => {
      const ok = req.headers.authorization === expected;
      res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok }));
    });
    token = await upstreamFor("jira", api.url, { type: "basic", username: "ci-bot@example.com" }, PASSWORD);
  });

  it("the upstream receives the username and password; the agent's own Authorization is gone", async () => {
    const res = await seen(call(token, "get", "/proxy/jira/rest/api/3/myself"));
    expect(res.status).toBe(200);
    expect(api.received.at(-1)!.headers.authorization).not.toContain(token);
  });
});

describe("aws-sigv4", () => {
  const S3_KEYS = {
    accessKeyId: "ASIA" + randomBytes(8).toString("hex").toUpperCase(),
    secretAccessKey: "s3-secret-" + randomBytes(12).toString("base64url"),
    sessionToken: "session-" + randomBytes(24).toString("base64url"),
  };
  const STS_KEYS = { accessKeyId: "AKIA" + randomBytes(8).toString("hex").toUpperCase(), secretAccessKey: "sts-secret-" + randomBytes(12).toString("base64url") };
  let s3: Fake;
  let sts: Fake;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    secrets.push(S3_KEYS.secretAccessKey, S3_KEYS.sessionToken, STS_KEYS.secretAccessKey);
    // S3-shaped: path-style /<bucket>/<key>; refuses anything whose signature does not verify.
    s3 = await fake((req, res, body) => {
      const problem = sigV4Problem(
        { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.from(body) },
        { credentials: S3_KEYS, region: "eu-west-1", service: "s3" },
      );
      res.writeHead(problem ? 403 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(problem ? { code: "SignatureDoesNotMatch", problem } : { ok: true }));
    });
    // STS-shaped: a form POST to /, signed payload.
    sts = await fake((req, res, body) => {
      const problem = sigV4Problem(
        { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.from(body) },
        { credentials: STS_KEYS, region: "us-east-1", service: "sts" },
      );
      const action = new URLSearchParams(body).get("Action");
      res.writeHead(problem ? 403 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(problem ? { problem } : { action, account: "123456789012" }));
    });
    tokens.s3 = await upstreamFor("s3-photos", `${s3.url}/photos-bucket`, { type: "aws-sigv4", region: "eu-west-1", service: "s3", payload: "unsigned" }, S3_KEYS);
    tokens.s3Signed = await upstreamFor("s3-signed", `${s3.url}/photos-bucket`, { type: "aws-sigv4", region: "eu-west-1", service: "s3", payload: "signed" }, S3_KEYS);
    tokens.sts = await upstreamFor("sts", sts.url, { type: "aws-sigv4", region: "us-east-1", service: "sts" }, STS_KEYS, { methods: ["POST"], paths: ["/"] });
  });

  it("the fake S3 really checks: an unsigned or wrongly signed request is refused", async () => {
    const unsigned = await fetch(`${s3.url}/photos-bucket/a.jpg`);
    expect(unsigned.status).toBe(403);
    const forged = await fetch(`${s3.url}/photos-bucket/a.jpg`, {
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${S3_KEYS.accessKeyId}/20260101/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"0".repeat(64)}`,
        "x-amz-date": new Date().toISOString().replace(/[-:]|\.\d{3}/g, ""),
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-security-token": S3_KEYS.sessionToken,
      },
    });
    expect(forged.status).toBe(403);
  });

  it("signs a GET with an awkward key and query as it is sent", async () => {
    const res = await seen(call(tokens.s3!, "get", "/proxy/s3-photos/2024/a%20(1)!.jpg?versionId=3&response-content-type=image/jpeg&prefix=a+b"));
    expect(res.status).toBe(200);
    const sent = s3.received.at(-1)!;
    expect(sent.url).toBe("/photos-bucket/2024/a%20%281%29%21.jpg?versionId=3&response-content-type=image%2Fjpeg&prefix=a%20b");
    expect(sent.headers["x-amz-security-token"]).toBe(S3_KEYS.sessionToken);
  });

  it("streams a PUT body with UNSIGNED-PAYLOAD", async () => {
    const res = await seen(call(tokens.s3!, "put", "/proxy/s3-photos/notes/today.txt").set("content-type", "text/plain").send("hello, bucket"));
    expect(res.status).toBe(200);
    const sent = s3.received.at(-1)!;
    expect(sent.body).toBe("hello, bucket");
    expect(sent.headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
  });

  it("hashes a buffered body for a signed payload", async () => {
    const res = await seen(call(tokens.s3Signed!, "put", "/proxy/s3-signed/notes/today.txt").set("content-type", "text/plain").send("hashed body"));
    expect(res.status).toBe(200);
    expect(s3.received.at(-1)!.headers["x-amz-content-sha256"]).toBe(createHash("sha256").update("hashed body").digest("hex"));
  });

  it("a chunked body over the size limit is refused with 413 before anything is signed or sent", async () => {
    const before = s3.received.length;
    const req = call(tokens.s3Signed!, "put", "/proxy/s3-signed/big.bin").set("transfer-encoding", "chunked");
    req.write(Buffer.alloc(MAX_BODY, 1));
    req.write(Buffer.alloc(10, 1));
    const res = await seen(req);
    expect(res.status).toBe(413);
    expect(s3.received.length).toBe(before);
  });

  it("drops the agent's Authorization, X-Amz-* headers and presigning parameters", async () => {
    const res = await seen(
      call(tokens.s3!, "get", "/proxy/s3-photos/k.txt?X-Amz-Signature=forged&X-Amz-Credential=AKIAAGENT&x=1")
        .set("x-amz-copy-source", "/other-bucket/secret.txt")
        .set("x-amz-security-token", "agent-session")
        .set("x-amz-date", "19990101T000000Z")
        .set("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    );
    expect(res.status).toBe(200);
    const sent = s3.received.at(-1)!;
    expect(sent.url).toBe("/photos-bucket/k.txt?x=1");
    expect(sent.headers["x-amz-copy-source"]).toBeUndefined();
    expect(sent.headers["x-amz-security-token"]).toBe(S3_KEYS.sessionToken);
    expect(sent.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${S3_KEYS.accessKeyId}/`));
  });

  it("signs an STS form POST (signed payload, path encoded the non-S3 way)", async () => {
    const res = await seen(call(tokens.sts!, "post", "/proxy/sts/").type("form").send("Action=GetCallerIdentity&Version=2011-06-15"));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ action: "GetCallerIdentity", account: "123456789012" });
  });
});

describe("oauth2-client-credentials", () => {
  /** Token endpoint and API in one fake, one client per scenario so each has its own counts. */
  const clients = new Map<string, string>();
  const tokenRequests = new Map<string, number>();
  const issued = new Map<string, { clientId: string; issuedAt: number; expiresAt: number }>();
  const apiSaw: { token: string; at: number; validFor: number }[] = [];
  const behaviour = { failing: false, lifetimeSeconds: new Map<string, number>(), delayMs: 0 };
  let server: Fake;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    server = await fake((req, res, body) => {
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(JSON.stringify(value));
      };
      if (req.method === "POST" && req.url === "/oauth2/token") {
        const form = new URLSearchParams(body);
        let clientId = form.get("client_id");
        let clientSecret = form.get("client_secret");
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
        if (basic) {
          const [id, secret] = Buffer.from(basic[1]!, "base64").toString().split(":").map((p) => decodeURIComponent(p.replace(/\+/g, " ")));
          clientId = id ?? null;
          clientSecret = secret ?? null;
        }
        tokenRequests.set(clientId ?? "", (tokenRequests.get(clientId ?? "") ?? 0) + 1);
        if (behaviour.failing) return json(500, { error: "temporarily_unavailable" });
        if (form.get("grant_type") !== "client_credentials" || !clientId || clients.get(clientId) !== clientSecret) {
          return json(401, { error: "invalid_client" });
        }
        if (form.get("scope") !== "items:read items:write") return json(400, { error: "invalid_scope" });
        const lifetime = behaviour.lifetimeSeconds.get(clientId) ?? 3600;
        const accessToken = "at-" + randomBytes(16).toString("hex");
        issued.set(accessToken, { clientId, issuedAt: Date.now(), expiresAt: Date.now() + lifetime * 1000 });
        secrets.push(accessToken);
        return setTimeout(() => json(200, { access_token: accessToken, token_type: "Bearer", expires_in: lifetime, scope: "items:read items:write" }), behaviour.delayMs);
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
      const token = issued.get(bearer);
      if (!token || token.expiresAt <= Date.now()) return json(401, { error: "invalid_token" });
      apiSaw.push({ token: bearer, at: Date.now(), validFor: token.expiresAt - Date.now() });
      return json(200, { items: [{ id: 1 }] });
    });
    const oauthUpstream = async (name: string, clientAuth = "client_secret_basic") => {
      const secret = `cs-${name}-` + randomBytes(8).toString("hex");
      clients.set(name, secret);
      secrets.push(secret);
      tokens[name] = await upstreamFor(
        name,
        `${server.url}/api`,
        { type: "oauth2-client-credentials", tokenUrl: `${server.url}/oauth2/token`, clientId: name, scopes: ["items:read", "items:write"], clientAuth },
        secret,
      );
    };
    for (const name of ["oauth-cache", "oauth-burst", "oauth-expiry", "oauth-fail", "oauth-rotate"]) await oauthUpstream(name);
    await oauthUpstream("oauth-post", "client_secret_post");
  });

  const get = (name: string) => seen(call(tokens[name]!, "get", `/proxy/${name}/v1/items`));

  it("obtains one token and reuses it", async () => {
    for (let i = 0; i < 3; i++) expect((await get("oauth-cache")).status).toBe(200);
    expect(tokenRequests.get("oauth-cache")).toBe(1);
    expect(new Set(apiSaw.slice(-3).map((s) => s.token)).size).toBe(1);
  });

  it("client_secret_post works too", async () => {
    expect((await get("oauth-post")).status).toBe(200);
    expect(tokenRequests.get("oauth-post")).toBe(1);
  });

  it("50 concurrent requests with a cold cache make exactly one token request", async () => {
    behaviour.delayMs = 1500; // everyone arrives while the first token request is still out
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => get("oauth-burst")));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    } finally {
      behaviour.delayMs = 0;
    }
    expect(tokenRequests.get("oauth-burst")).toBe(1);
    expect(new Set(apiSaw.slice(-50).map((s) => s.token)).size).toBe(1);
  });

  it("refreshes shortly before expiry, while the old token is still valid", async () => {
    behaviour.lifetimeSeconds.set("oauth-expiry", 5);
    expect((await get("oauth-expiry")).status).toBe(200);
    const first = apiSaw.at(-1)!;
    await sleep(1000);
    expect((await get("oauth-expiry")).status).toBe(200);
    expect(tokenRequests.get("oauth-expiry")).toBe(1);
    await sleep(3300); // past the refresh time (4 s), before expiry (5 s), with room for slow calls on a loaded machine
    expect((await get("oauth-expiry")).status).toBe(200);
    const second = apiSaw.at(-1)!;
    expect(tokenRequests.get("oauth-expiry")).toBe(2);
    expect(second.token).not.toBe(first.token);
    // The new token was asked for while the old one was still valid (not once it had expired).
    expect(issued.get(second.token)!.issuedAt).toBeLessThan(issued.get(first.token)!.expiresAt);
  });

  it("a failed refresh is a 502, never the stale token; the next good refresh recovers", async () => {
    behaviour.lifetimeSeconds.set("oauth-fail", 3);
    expect((await get("oauth-fail")).status).toBe(200);
    const stale = apiSaw.at(-1)!.token;
    behaviour.failing = true;
    try {
      await sleep(2500);
      const seenBefore = apiSaw.length;
      for (const wait of [0, 700]) {
        await sleep(wait); // once within the refresh margin, once past expiry
        const res = await get("oauth-fail");
        expect(res.status).toBe(502);
        expect(res.body.error.code).toBe("upstream_credential_unavailable");
      }
      expect(apiSaw.length).toBe(seenBefore);
      expect(server.received.filter((r) => r.headers.authorization === `Bearer ${stale}`).length).toBe(1);
    } finally {
      behaviour.failing = false;
    }
    expect((await get("oauth-fail")).status).toBe(200);
    expect(apiSaw.at(-1)!.token).not.toBe(stale);
    expect(tokenRequests.get("oauth-fail")).toBe(4);
  });

  it("the 502 is audited and logged with its cause, without the secret", async () => {
    const audit = await broker.admin("get", "/v1/audit?upstream=oauth-fail&limit=50");
    expect(audit.body.events.some((e: { reason: string; status: number }) => e.status === 502 && e.reason === "upstream_credential_unavailable")).toBe(true);
    expect(broker.logs.some((l) => l.includes("token endpoint") && l.includes("answered 500"))).toBe(true);
  });

  it("a new secret or config drops the cached token", async () => {
    expect((await get("oauth-rotate")).status).toBe(200);
    expect(tokenRequests.get("oauth-rotate")).toBe(1);
    const rotated = "cs-rotated-" + randomBytes(8).toString("hex");
    secrets.push(rotated);
    clients.set("oauth-rotate", rotated);
    expect((await broker.admin("put", "/v1/upstreams/oauth-rotate/secret", { secret: rotated })).status).toBe(200);
    expect((await get("oauth-rotate")).status).toBe(200);
    expect(tokenRequests.get("oauth-rotate")).toBe(2);
    const patched = await broker.admin("patch", "/v1/upstreams/oauth-rotate", {
      auth: { type: "oauth2-client-credentials", tokenUrl: `${server.url}/oauth2/token`, clientId: "oauth-rotate", scopes: ["items:read", "items:write"], clientAuth: "client_secret_post" },
    });
    expect(patched.status).toBe(200);
    expect((await get("oauth-rotate")).status).toBe(200);
    expect(tokenRequests.get("oauth-rotate")).toBe(3);
  });
});

describe("github-app", () => {
  const APP_ID = 424242;
  const INSTALLATION_ID = 31337;
  const appKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const APP_PEM = appKeys.privateKey.export({ type: "pkcs1", format: "pem" }) as string;
  const OTHER_PEM = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string;
  const exchanges: { body: unknown; jwtLifetime: number }[] = [];
  const installationTokens = new Set<string>();
  let github: Fake;
  const tokens: Record<string, string> = {};
  /** How long the installation tokens the fake GitHub issues live. */
  let installationTokenLifetimeMs = 3600_000;

  beforeAll(async () => {
    secrets.push(APP_PEM, OTHER_PEM);
    github = await fake((req, res, body) => {
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
      if (req.method === "POST" && req.url === `/app/installations/${INSTALLATION_ID}/access_tokens`) {
        // As GitHub: the app JWT must verify with the app's public key, be RS256, from this app, and short.
        jwtVerify(bearer, appKeys.publicKey, { algorithms: ["RS256"], issuer: String(APP_ID) }).then(
          ({ payload }) => {
            const jwtLifetime = payload.exp! - payload.iat!;
            if (jwtLifetime > 660) return json(401, { message: "'Expiration time' claim ('exp') is too far in the future" });
            exchanges.push({ body: JSON.parse(body), jwtLifetime });
            const token = "ghs_" + randomBytes(18).toString("hex");
            installationTokens.add(token);
            secrets.push(token);
            json(201, { token, expires_at: new Date(Date.now() + installationTokenLifetimeMs).toISOString(), permissions: {}, repository_selection: "selected" });
          },
          () => json(401, { message: "A JSON web token could not be decoded" }),
        );
        return;
      }
      if (!installationTokens.has(bearer)) return json(401, { message: "Bad credentials" });
      return json(200, [{ number: 1, title: "first issue" }]);
    });
    const auth = { type: "github-app", appId: APP_ID, installationId: INSTALLATION_ID, permissions: { issues: "write", metadata: "read" } };
    tokens.readIssues = await upstreamFor("github", github.url, auth, APP_PEM, { methods: ["GET"], paths: ["/repos/acme/widgets/**"] });
    tokens.broad = await grantOn("github", "g-github-broad", { methods: ["GET", "POST"], paths: ["/repos/acme/widgets/**", "/graphql"] });
    tokens.wrongKey = await upstreamFor("github-wrong-key", github.url, auth, OTHER_PEM);
  });

  it("exchanges a verified app JWT for an installation token narrowed to the grant, and caches it", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await seen(call(tokens.readIssues!, "get", "/proxy/github/repos/acme/widgets/issues"));
      expect(res.status).toBe(200);
    }
    expect(exchanges).toHaveLength(1);
    expect(exchanges[0]!.body).toEqual({ repositories: ["widgets"], permissions: { issues: "read", metadata: "read" } });
    expect(exchanges[0]!.jwtLifetime).toBeLessThanOrEqual(600);
  });

  it("a grant GitHub cannot narrow as far gets its own, broader token", async () => {
    const res = await seen(call(tokens.broad!, "get", "/proxy/github/repos/acme/widgets/issues"));
    expect(res.status).toBe(200);
    expect(exchanges).toHaveLength(2);
    expect(exchanges[1]!.body).toEqual({ permissions: { issues: "write", metadata: "read" } });
    const apiTokens = github.received.filter((r) => r.url.startsWith("/repos/")).map((r) => r.headers.authorization);
    expect(new Set(apiTokens).size).toBe(2);
  });

  it("refreshes the installation token by its expires_at, before it expires", async () => {
    installationTokenLifetimeMs = 2_000; // refreshed when four fifths of its life are gone
    try {
      const token = await upstreamFor("github-short", github.url, { type: "github-app", appId: APP_ID, installationId: INSTALLATION_ID }, APP_PEM);
      const issues = () => seen(call(token, "get", "/proxy/github-short/repos/acme/widgets/issues"));
      const before = exchanges.length;
      expect((await issues()).status).toBe(200);
      expect((await issues()).status).toBe(200);
      expect(exchanges.length).toBe(before + 1); // still fresh: reused
      const first = github.received.at(-1)!.headers.authorization;
      await new Promise((r) => setTimeout(r, 1_700));
      expect((await issues()).status).toBe(200);
      expect(exchanges.length).toBe(before + 2);
      expect(github.received.at(-1)!.headers.authorization).not.toBe(first);
    } finally {
      installationTokenLifetimeMs = 3600_000;
    }
  });

  it("an app JWT signed with the wrong key is refused by GitHub → 502, nothing forwarded", async () => {
    const before = github.received.length;
    const res = await seen(call(tokens.wrongKey!, "get", "/proxy/github-wrong-key/repos/acme/widgets/issues"));
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("upstream_credential_unavailable");
    expect(github.received.length).toBe(before + 1); // the token exchange only
  });
});

describe("credential config is checked when written", () => {
  const PEM = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string;
  const SECRET = "never-echoed-" + randomBytes(6).toString("hex");
  const base = { baseUrl: "https://api.example.test", environment: "staging" };

  // undefined: the field is left out of the request.
  const refused: [string, object | undefined, unknown, string][] = [
    ["a secret left out", { type: "header" }, undefined, "/secret"],
    ["auth left out", undefined, SECRET, "/auth"],
    ["basic without username", { type: "basic" }, SECRET, "/auth/username"],
    ["basic username with a colon", { type: "basic", username: "a:b" }, SECRET, "/auth/username"],
    ["basic with an object secret", { type: "basic", username: "u" }, { password: SECRET }, "/secret"],
    ["aws-sigv4 with a string secret", { type: "aws-sigv4", region: "us-east-1", service: "s3" }, SECRET, "/secret"],
    ["aws-sigv4 without secretAccessKey", { type: "aws-sigv4", region: "us-east-1", service: "s3" }, { accessKeyId: "AKIAEXAMPLE" }, "/secret/secretAccessKey"],
    ["aws-sigv4 with an unknown secret part", { type: "aws-sigv4", region: "us-east-1", service: "s3" }, { accessKeyId: "AKIAEXAMPLE", secretAccessKey: SECRET, extra: "x" }, "/secret"],
    ["aws-sigv4 without region", { type: "aws-sigv4", service: "s3" }, { accessKeyId: "AKIAEXAMPLE", secretAccessKey: SECRET }, "/auth/region"],
    ["aws-sigv4 with a bad payload mode", { type: "aws-sigv4", region: "us-east-1", service: "s3", payload: "chunked" }, { accessKeyId: "AKIAEXAMPLE", secretAccessKey: SECRET }, "/auth/payload"],
    ["oauth2 with a tokenUrl that is not http(s)", { type: "oauth2-client-credentials", tokenUrl: "file:///etc/passwd", clientId: "c" }, SECRET, "/auth/tokenUrl"],
    ["oauth2 without clientId", { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/token" }, SECRET, "/auth/clientId"],
    ["oauth2 with an object secret", { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/token", clientId: "c" }, { clientSecret: SECRET }, "/secret"],
    ["github-app with a PEM that does not parse", { type: "github-app", appId: 1, installationId: 2 }, `-----BEGIN RSA PRIVATE KEY-----\n${SECRET}\n-----END RSA PRIVATE KEY-----\n`, "/secret"],
    ["github-app without installationId", { type: "github-app", appId: 1 }, PEM, "/auth/installationId"],
    ["an unknown kind", { type: "kerberos" }, SECRET, "/auth/type"],
  ];
  it.each(refused)("%s → 400", async (_name, auth, secret, path) => {
    const res = await broker.admin("post", "/v1/upstreams", { name: "bad-config", ...base, auth, secret });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect(res.text).not.toContain(SECRET);
    expect((await broker.admin("get", "/v1/upstreams/bad-config")).status).toBe(404);
  });

  it("pointing the token endpoint at another origin needs the client secret again", async () => {
    const auth = { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/oauth2/token", clientId: "c" };
    expect((await broker.admin("post", "/v1/upstreams", { name: "oauth-moved", ...base, auth, secret: SECRET })).status).toBe(201);
    const moved = await broker.admin("patch", "/v1/upstreams/oauth-moved", { auth: { ...auth, tokenUrl: "https://attacker.example/token" } });
    expect(moved.status).toBe(400);
    expect(moved.body.error.details).toEqual([expect.objectContaining({ path: "/secret" })]);
    expect((await broker.admin("get", "/v1/upstreams/oauth-moved")).body.auth.tokenUrl).toBe(auth.tokenUrl);
    // The same origin, or the secret given again, is fine.
    expect((await broker.admin("patch", "/v1/upstreams/oauth-moved", { auth: { ...auth, tokenUrl: "https://login.example.test/v2/token" } })).status).toBe(200);
    const withSecret = await broker.admin("patch", "/v1/upstreams/oauth-moved", { auth: { ...auth, tokenUrl: "https://other.example/token" }, secret: "another-" + SECRET });
    expect(withSecret.status).toBe(200);
    expect(withSecret.text).not.toContain(SECRET);
  });

  it("a new secret of the wrong shape for the kind → 400, the old one stays", async () => {
    const created = await broker.admin("post", "/v1/upstreams", {
      name: "shape-check",
      ...base,
      auth: { type: "aws-sigv4", region: "us-east-1", service: "s3" },
      secret: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: SECRET },
    });
    expect(created.status).toBe(201);
    const res = await broker.admin("put", "/v1/upstreams/shape-check/secret", { secret: SECRET });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("/secret");
    expect(res.text).not.toContain(SECRET);
  });

  it("changing the kind needs a secret that fits the new kind", async () => {
    const alone = await broker.admin("patch", "/v1/upstreams/shape-check", { auth: { type: "basic", username: "u" } });
    expect(alone.status).toBe(400);
    expect(alone.body.error.details).toEqual([{ path: "/secret", message: "a change of kind to basic needs its secret in the same request" }]);
    const together = await broker.admin("patch", "/v1/upstreams/shape-check", { auth: { type: "basic", username: "u" }, secret: SECRET });
    expect(together.status).toBe(200);
    expect(together.body.auth).toEqual({ type: "basic", username: "u" });
    expect(together.body.secret.set).toBe(true);
  });

  it("the upstream view never shows a secret", async () => {
    const res = await broker.admin("get", "/v1/upstreams");
    agentSaw.push(res.text);
    expect(res.text).not.toContain(SECRET);
  });
});

describe("no upstream secret or token ever reaches the agent, the logs or the audit log", () => {
  it("checked over every response, log line and audit event of this file", async () => {
    const audit = await broker.admin("get", "/v1/audit?limit=500");
    const everything = [...agentSaw, ...broker.logs, audit.text].join("\n");
    expect(agentSaw.length).toBeGreaterThan(50);
    expect(secrets.length).toBeGreaterThan(10);
    for (const secret of secrets) {
      expect(everything).not.toContain(secret);
      // PEMs: not even a line of one
      for (const line of secret.split("\n").filter((l) => l.length > 40)) expect(everything).not.toContain(line);
    }
  });
});
