import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import aws4 from "aws4";
import { EnvHttpProxyAgent, request as undiciRequest } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeholderValue } from "../../src/forward-proxy/placeholders.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { CLI, emptyHome, runCli } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { sigV4Problem } from "../helpers/sigv4-verifier.js";
import { startTlsUpstream } from "../helpers/tls-upstream.js";
import { waitFor } from "../helpers/wait.js";

const REAL_SECRET = "real-github-token-for-run";
const AWS_REAL = { accessKeyId: "AKIAREALKEY000001", secretAccessKey: "real/secret/access/key/000000000000000000" };
const undiciUrl = pathToFileURL(createRequire(import.meta.url).resolve("undici")).href;

describe("keyward run and placeholder credentials", () => {
  let store: Store;
  let broker: TestBroker;
  let github: Awaited<ReturnType<typeof startTlsUpstream>>;
  let s3: Awaited<ReturnType<typeof startTlsUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    github = await startTlsUpstream();
    s3 = await startTlsUpstream();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_FORWARD_PROXY_PORT: "0" });
    await createUpstream(broker, {
      name: "github",
      baseUrl: github.url,
      environment: "prod",
      secret: REAL_SECRET,
      tls: { ca: github.caPem },
      placeholders: ["GITHUB_TOKEN"],
    } as never);
    await createUpstream(broker, {
      name: "s3",
      baseUrl: s3.url,
      environment: "prod",
      auth: { type: "aws-sigv4", region: "us-east-1", service: "s3" },
      secret: AWS_REAL,
      tls: { ca: s3.caPem },
      placeholders: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    } as never);
    agent = await createAgent(broker, "runner");
    await createGrant(broker, { name: "gh", upstream: "github", methods: ["GET"], paths: ["/repos/**"], agents: [agent.id] });
    await createGrant(broker, { name: "logs", upstream: "s3", methods: ["GET", "PUT"], paths: ["/logs/**"], agents: [agent.id] });
    env = {
      HOME: emptyHome(),
      KEYWARD_URL: broker.url,
      KEYWARD_FORWARD_PROXY_URL: `http://127.0.0.1:${broker.keyward.forwardProxy!.address().port}`,
      KEYWARD_CLIENT_ID: agent.clientId,
      KEYWARD_CLIENT_SECRET: agent.clientSecret,
    };
  });

  afterAll(async () => {
    await broker?.close();
    await github?.close();
    await s3?.close();
    await store?.drop();
  });

  it("keyward run -- node script.mjs: the child reaches the upstream, which gets the real key; the child never had it", async () => {
    const script = join(store.dataDir, "agent.mjs");
    writeFileSync(
      script,
      `import { EnvHttpProxyAgent, fetch } from ${JSON.stringify(undiciUrl)};
const dispatcher = new EnvHttpProxyAgent();
const res = await fetch(${JSON.stringify(github.url + "/repos/run")}, { dispatcher, headers: { authorization: "token " + process.env.GITHUB_TOKEN } });
const denied = await fetch(${JSON.stringify(github.url + "/user")}, { dispatcher, method: "GET" });
console.log(JSON.stringify({
  status: res.status, body: await res.json(), denied: denied.status,
  secretVisible: Object.values(process.env).some((v) => v === ${JSON.stringify(agent.clientSecret)} || v === ${JSON.stringify(REAL_SECRET)}),
  clientVars: Object.keys(process.env).filter((k) => k.startsWith("KEYWARD_CLIENT")),
  githubToken: process.env.GITHUB_TOKEN, proxy: process.env.HTTPS_PROXY,
  ca: [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE, process.env.REQUESTS_CA_BUNDLE, process.env.CURL_CA_BUNDLE, process.env.GIT_SSL_CAINFO, process.env.AWS_CA_BUNDLE].every(Boolean),
}));
process.exit(7);
`,
    );
    const before = github.received.length;
    // The github grant second: the relay must pick each tunnel's token by the upstream it goes to, not the first grant's.
    const result = await runCli(["run", "--grant", "logs", "--grant", "gh", "--", process.execPath, script], { env });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(7); // the child's exit status passes through
    const out = JSON.parse(result.stdout);
    expect(out).toMatchObject({ status: 200, body: { url: "/repos/run" }, denied: 403, secretVisible: false, clientVars: [], ca: true });
    expect(out.githubToken).toBe(placeholderValue("GITHUB_TOKEN"));
    expect(out.proxy).toMatch(/^http:\/\/keyward:[^@]+@127\.0\.0\.1:\d+$/);
    const got = github.received.slice(before);
    expect(got.map((r) => r.url)).toEqual(["/repos/run"]);
    expect(got[0]!.headers.authorization).toBe(`Bearer ${REAL_SECRET}`);
    expect(JSON.stringify(got[0]!.headers)).not.toContain("keyward-placeholder");
  });

  it("a long-running child outlives its tokens: each new tunnel gets the relay's current token, so calls keep working past every expiry", async () => {
    await createGrant(broker, { name: "gh-short", upstream: "github", methods: ["GET"], paths: ["/repos/**"], agents: [agent.id], maxTtlSeconds: 3 });
    const script = join(store.dataDir, "long-running.mjs");
    writeFileSync(
      script,
      `import { EnvHttpProxyAgent, fetch } from ${JSON.stringify(undiciUrl)};
const dispatcher = new EnvHttpProxyAgent();
const statuses = [];
for (let i = 0; i < 8; i++) {
  const res = await fetch(${JSON.stringify(github.url + "/repos/tick-")} + i, { dispatcher });
  await res.arrayBuffer();
  statuses.push(res.status);
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
console.log(JSON.stringify(statuses));
`,
    );
    const before = github.received.length;
    const result = await runCli(["run", "--grant", "gh-short", "--", process.execPath, script], { env });
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual(Array(8).fill(200));
    expect(github.received.slice(before).map((r) => r.url)).toEqual(Array.from({ length: 8 }, (_, i) => `/repos/tick-${i}`));
    // Over 8 s with tokens of 3 s, the calls were made with at least three tokens in turn: the relay refreshed.
    const audit = await broker.admin("get", `/v1/audit?agentId=${agent.id}&kind=proxy&decision=allow&limit=500`);
    const ticks = (audit.body.events as { path: string | null; jti: string }[]).filter((e) => e.path?.includes("/repos/tick-"));
    expect(ticks).toHaveLength(8);
    expect(new Set(ticks.map((e) => e.jti)).size).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it("keyward run -- curl: curl reads the proxy and CA variables as they are set (the client secret read from a file)", async () => {
    const before = github.received.length;
    const secretFile = join(store.dataDir, "agent-secret");
    writeFileSync(secretFile, agent.clientSecret + "\n", { mode: 0o600 });
    const fromFile = { ...Object.fromEntries(Object.entries(env).filter(([name]) => name !== "KEYWARD_CLIENT_SECRET")), KEYWARD_CLIENT_SECRET_FILE: secretFile };
    const childEnv = join(store.dataDir, "curl-env");
    const result = await runCli(["run", "--grant", "gh", "--", "sh", "-c", `env > ${childEnv}; exec curl -sS ${github.url}/repos/curl`], { env: fromFile });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ url: "/repos/curl" });
    // What curl ran with: neither the agent's secret, nor where it is kept, nor the upstream's key.
    const seen = readFileSync(childEnv, "utf8");
    for (const withheld of [agent.clientSecret, secretFile, "KEYWARD_CLIENT", REAL_SECRET]) expect(seen).not.toContain(withheld);
    expect(github.received.slice(before)[0]!.headers.authorization).toBe(`Bearer ${REAL_SECRET}`);
  });

  it("two grants reaching the same upstream host and port are refused before the command starts: a tunnel carries one token", async () => {
    await createGrant(broker, { name: "gh-issues", upstream: "github", methods: ["POST"], paths: ["/repos/*/issues"], agents: [agent.id] });
    const marker = join(store.dataDir, "ran-with-two");
    const result = await runCli(["run", "--grant", "gh", "--grant", "gh-issues", "--", "sh", "-c", `touch ${marker}`], { env });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`grants "gh" and "gh-issues" both reach localhost:${github.port}`);
    expect(existsSync(marker)).toBe(false);
  });

  it("without KEYWARD_FORWARD_PROXY_PORT there is no forward proxy: no listener, no CA, and keyward run starts nothing", async () => {
    const offStore = newStore();
    const off = await startBroker(offStore);
    try {
      expect(off.keyward.forwardProxy).toBeNull();
      expect((await off.http().get("/v1/forward-proxy/ca.pem")).status).toBe(404);
      const a = await createAgent(off, "runner");
      await createUpstream(off, { name: "github", baseUrl: github.url, environment: "prod", secret: REAL_SECRET, tls: { ca: github.caPem } } as never);
      await createGrant(off, { name: "gh", upstream: "github", methods: ["GET"], paths: ["/repos/**"], agents: [a.id] });
      const marker = join(offStore.dataDir, "ran");
      const result = await runCli(["run", "--grant", "gh", "--", "sh", "-c", `touch ${marker}`], {
        env: { ...env, KEYWARD_URL: off.url, KEYWARD_CLIENT_ID: a.clientId, KEYWARD_CLIENT_SECRET: a.clientSecret },
      });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("KEYWARD_FORWARD_PROXY_PORT");
      expect(existsSync(marker)).toBe(false);
    } finally {
      await off.close();
      await offStore.drop();
    }
  });

  it("a signal to keyward run reaches the child; a child killed by it takes keyward with it", async () => {
    const marker = join(store.dataDir, "marker");
    const markerSays = (text: string) => waitFor(() => existsSync(marker) && readFileSync(marker, "utf8").includes(text), 30_000, `"${text}" in ${marker}`, 100);
    const start = (argv: string[]) =>
      spawn(process.execPath, [CLI, "run", "--grant", "gh", "--", ...argv], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: "ignore" });
    const exited = (child: ReturnType<typeof spawn>) => new Promise<[number | null, string | null]>((resolve) => child.on("exit", (c, s) => resolve([c, s])));

    // A child that handles SIGTERM itself: it gets it, and its exit status is keyward's.
    const handler = join(store.dataDir, "trap.mjs");
    writeFileSync(handler, `import { existsSync, readFileSync, writeFileSync } from "node:fs";
writeFileSync(${JSON.stringify(marker)}, "started");
process.on("SIGTERM", () => { writeFileSync(${JSON.stringify(marker)}, "got SIGTERM"); process.exit(3); });
setInterval(() => {}, 1000);
`);
    const trapping = start([process.execPath, handler]);
    await markerSays("started");
    trapping.kill("SIGTERM");
    expect(await exited(trapping)).toEqual([3, null]);
    expect(readFileSync(marker, "utf8")).toBe("got SIGTERM");

    // A child the signal kills: keyward dies of the same signal.
    writeFileSync(marker, "");
    const sleeping = start(["sh", "-c", `echo started > ${marker}; exec sleep 30`]);
    await markerSays("started");
    sleeping.kill("SIGTERM");
    expect(await exited(sleeping)).toEqual([null, "SIGTERM"]);
  });

  it("AWS: a request signed with the placeholder keys is re-signed with the stored key; the upstream verifies it", async () => {
    const token = await tokenFor(broker, agent, { grant: "logs" });
    const dispatcher = new EnvHttpProxyAgent({ httpsProxy: `http://agent:${token}@${env.KEYWARD_FORWARD_PROXY_URL!.slice(7)}`, noProxy: "", requestTls: { ca: (await broker.http().get("/v1/forward-proxy/ca.pem")).text } });
    try {
      const body = "log line\n";
      const signed = aws4.sign(
        { host: `localhost:${s3.port}`, method: "PUT", path: "/logs/a.txt", service: "s3", region: "us-east-1", body, headers: { "content-type": "text/plain" } },
        { accessKeyId: placeholderValue("AWS_ACCESS_KEY_ID"), secretAccessKey: placeholderValue("AWS_SECRET_ACCESS_KEY") },
      );
      const before = s3.received.length;
      const res = await undiciRequest(`${s3.url}/logs/a.txt`, { method: "PUT", headers: signed.headers as Record<string, string>, body, dispatcher });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      const got = s3.received.slice(before);
      expect(got).toHaveLength(1);
      expect(got[0]!.body).toBe(body);
      expect(JSON.stringify(got[0]!.headers)).not.toContain("keyward-placeholder");
      expect(sigV4Problem({ ...got[0]!, body: got[0]!.rawBody }, { credentials: AWS_REAL, region: "us-east-1", service: "s3" })).toBeNull();
      // A DELETE the grant does not allow never reaches the upstream.
      const del = await undiciRequest(`${s3.url}/logs/a.txt`, { method: "DELETE", dispatcher });
      expect(del.statusCode).toBe(403);
      await del.body.text();
      expect(s3.received.length).toBe(before + 1);
    } finally {
      await dispatcher.close();
    }
  });

  it("keyward run -- node s3.mjs: @aws-sdk/client-s3 with the placeholder keys from its environment, signed again by Keyward; a DELETE never reaches the upstream", async () => {
    const script = join(store.dataDir, "s3.mjs");
    const resolve = (name: string) => JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve(name)).href);
    writeFileSync(
      script,
      `import { DeleteObjectCommand, PutObjectCommand, S3Client } from ${resolve("@aws-sdk/client-s3")};
import { HttpsProxyAgent } from ${resolve("https-proxy-agent")};
// The SDK reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (placeholders here) and trusts NODE_EXTRA_CA_CERTS.
const client = new S3Client({
  region: "us-east-1", endpoint: ${JSON.stringify(s3.url)}, forcePathStyle: true, maxAttempts: 1,
  requestChecksumCalculation: "WHEN_REQUIRED",
  requestHandler: { httpsAgent: new HttpsProxyAgent(process.env.HTTPS_PROXY) },
});
await client.send(new PutObjectCommand({ Bucket: "logs", Key: "sdk.txt", Body: "from the sdk" }));
const denied = await client.send(new DeleteObjectCommand({ Bucket: "logs", Key: "sdk.txt" })).then(() => 200, (err) => err.$metadata?.httpStatusCode);
const secretVisible = Object.values(process.env).some((v) => v === ${JSON.stringify(AWS_REAL.accessKeyId)} || v === ${JSON.stringify(AWS_REAL.secretAccessKey)});
console.log(JSON.stringify({ denied, keyId: process.env.AWS_ACCESS_KEY_ID, secretVisible }));
`,
    );
    const before = s3.received.length;
    const result = await runCli(["run", "--grant", "logs", "--", process.execPath, script], { env: { ...env, AWS_ACCESS_KEY_ID: AWS_REAL.accessKeyId } });
    // The SDK warns about Node 20's end of support on stderr; nothing else may be there.
    expect(result.stderr.replace(/\(node:\d+\) Warning: NodeVersionSupportWarning[\s\S]*?trace-warnings[^\n]*\n/, "")).toBe("");
    expect(result.code).toBe(0);
    // keyward run's parent had the real key id: the child got the placeholder instead, and never the secret key.
    expect(JSON.parse(result.stdout)).toEqual({ denied: 403, keyId: placeholderValue("AWS_ACCESS_KEY_ID"), secretVisible: false });
    const got = s3.received.slice(before);
    expect(got.map((r) => [r.method, r.url.split("?")[0]])).toEqual([["PUT", "/logs/sdk.txt"]]);
    expect(got[0]!.body).toBe("from the sdk");
    expect(JSON.stringify(got[0]!.headers)).not.toContain("keyward-placeholder");
    expect(sigV4Problem({ ...got[0]!, body: got[0]!.rawBody }, { credentials: AWS_REAL, region: "us-east-1", service: "s3" })).toBeNull();
  });
});
