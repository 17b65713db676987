import { randomBytes } from "node:crypto";
import net from "node:net";
import { importJWK, type CryptoKey, type JWK } from "jose";
import { expect } from "vitest";
import type request from "supertest";
import type { PrismaClient } from "@prisma/client";
import { Vault } from "../../src/vault/vault.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Upstream = Awaited<ReturnType<typeof startUpstream>>;
type Agent = Awaited<ReturnType<typeof createAgent>>;

/**
 * One broker per security test file, attacked over real HTTP, with:
 * - `api` (Bearer credential) and `keyed` (X-Api-Key credential): alice's grant A covers both paths
 *   under /v1/**, GET/POST/PUT, with DELETE and /v1/admin/** denied;
 * - `other`: bob's grant B; alice's tokens must never reach it;
 * - `outsider`: a server that is no upstream at all: SSRF attempts aim at it.
 * Every response the attacker sees is recorded for the secret sweep (SEC-01).
 */
export type Scenario = {
  store: Store;
  broker: TestBroker;
  port: number;
  api: Upstream;
  keyed: Upstream;
  other: Upstream;
  outsider: Upstream;
  alice: Agent;
  bob: Agent;
  mallory: Agent;
  grantA: { id: string; name: string };
  grantB: { id: string; name: string };
  /** alice's token for grant A (upstream `api`) and for grant A2 (upstream `keyed`); bob's for grant B. */
  tokens: { api: string; keyed: string; other: string };
  secrets: { api: string; keyed: string; other: string };
  /** Everything an attacker got back: bodies, headers, raw socket output. */
  responses: string[];
  record<T extends request.Response>(res: T): T;
  /** Sum of requests all real upstreams and the outsider received. */
  received(): number;
  close(): Promise<void>;
};

export async function startScenario(env: Record<string, string> = {}): Promise<Scenario> {
  const [api, keyed, other, outsider] = await Promise.all([startUpstream(), startUpstream(), startUpstream(), startUpstream()]);
  const store = newStore();
  const broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: "2000", ...env });
  const secrets = {
    api: `sk-api-${randomBytes(12).toString("hex")}`,
    keyed: `sk-keyed-${randomBytes(12).toString("hex")}`,
    other: `sk-other-${randomBytes(12).toString("hex")}`,
  };
  await createUpstream(broker, { name: "api", baseUrl: api.url, environment: "staging", secret: secrets.api });
  await createUpstream(broker, {
    name: "keyed",
    baseUrl: keyed.url,
    environment: "staging",
    secret: secrets.keyed,
    auth: { type: "header", header: "X-Api-Key", template: "{secret}" },
  });
  await createUpstream(broker, { name: "other", baseUrl: other.url, environment: "production", secret: secrets.other });
  const [alice, bob, mallory] = [await createAgent(broker, "alice"), await createAgent(broker, "bob"), await createAgent(broker, "mallory")];
  const policy = { methods: ["GET", "POST", "PUT", "DELETE"], paths: ["/v1/**"], deny: [{ method: "DELETE" }, { path: "/v1/admin/**" }] };
  const grantA = await createGrant(broker, { name: "grant-a", agents: [alice.id], upstream: "api", ...policy });
  await createGrant(broker, { name: "grant-a2", agents: [alice.id], upstream: "keyed", ...policy });
  const grantB = await createGrant(broker, { name: "grant-b", agents: [bob.id], upstream: "other", methods: ["GET"], paths: ["/**"] });
  const tokens = {
    api: await tokenFor(broker, alice, { grant: "grant-a" }),
    keyed: await tokenFor(broker, alice, { grant: "grant-a2" }),
    other: await tokenFor(broker, bob, { grant: "grant-b" }),
  };
  const responses: string[] = [];
  const all = [api, keyed, other, outsider];
  return {
    store,
    broker,
    port: Number(new URL(broker.url).port),
    api,
    keyed,
    other,
    outsider,
    alice,
    bob,
    mallory,
    grantA,
    grantB,
    tokens,
    secrets,
    responses,
    record(res) {
      responses.push(JSON.stringify(res.headers) + "\n" + (res.text ?? ""));
      return res;
    },
    received: () => all.reduce((n, u) => n + u.received.length, 0),
    async close() {
      await broker.close();
      await Promise.all(all.map((u) => u.close()));
      await store.drop();
    },
  };
}

/** Keyward's active signing key, read the way the broker reads it: to forge tokens with bad claims. */
export async function brokerSigningKey(s: Scenario): Promise<{ kid: string; privateKey: CryptoKey; jwk: JWK }> {
  const row = await s.broker.keyward.db.prisma.signingKey.findFirstOrThrow({
    where: { retiredAt: null },
    orderBy: { createdAt: "desc" },
  });
  const vault = new Vault(Buffer.from(s.store.masterKey, "base64"));
  const jwk = JSON.parse(vault.decrypt(row.privateCiphertext, `signing-key:${row.kid}`)) as JWK;
  return { kid: row.kid, privateKey: (await importJWK(jwk, "ES256")) as CryptoKey, jwk };
}

export type RawResult = { status: number | null; text: string; closed: boolean; ms: number };

/**
 * Sends bytes on a raw TCP socket (no client library to normalise, merge or refuse anything) and
 * collects what comes back until the server closes the connection or `waitMs` passes.
 * `chunks` after the first are written `gapMs` apart (slow clients).
 */
export function rawRequest(
  port: number,
  chunks: string | string[],
  options: { waitMs?: number; gapMs?: number; record?: string[] } = {},
): Promise<RawResult> {
  const parts = Array.isArray(chunks) ? [...chunks] : [chunks];
  const waitMs = options.waitMs ?? 2000;
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    let timer: NodeJS.Timeout | undefined;
    const writeNext = () => {
      const next = parts.shift();
      if (next === undefined || socket.destroyed) return;
      socket.write(next);
      if (parts.length > 0) timer = setTimeout(writeNext, options.gapMs ?? 0);
    };
    socket.on("connect", writeNext);
    socket.on("data", (c: Buffer) => {
      text += c.toString("latin1");
      // A complete response with a Content-Length: no need to wait for the server to close.
      const head = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
      if (head !== -1 && length && text.length - head - 4 >= Number(length[1])) finish(false);
    });
    socket.on("error", () => {});
    socket.on("close", () => finish(true));
    const deadline = setTimeout(() => finish(false), waitMs);
    let done = false;
    function finish(closed: boolean) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      socket.destroy();
      options.record?.push(text);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: status ? Number(status[1]) : null, text, closed, ms: Date.now() - started });
    }
  });
}

/** The JSON body of a raw response, or undefined. */
export function rawJson(result: RawResult): { error?: { code?: string } } | undefined {
  const body = result.text.slice(result.text.indexOf("\r\n\r\n") + 4);
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));

/** The forms a master key could leak in: as configured (base64), base64url and hex. */
export function masterKeyForms(masterKey: string): string[] {
  const raw = Buffer.from(masterKey, "base64");
  return [masterKey, raw.toString("base64url"), raw.toString("hex")];
}

/** The private part (`d`) of every signing key in a database, active or retired, decrypted with the master key. */
export async function signingPrivateParts(prisma: PrismaClient, masterKey: string): Promise<string[]> {
  const vault = new Vault(Buffer.from(masterKey, "base64"));
  const rows = await prisma.signingKey.findMany();
  return rows.map((row) => (JSON.parse(vault.decrypt(row.privateCiphertext, `signing-key:${row.kid}`)) as JWK).d!);
}

/** What one run exposed, and what must not be in it. Labels name a secret in a failure without printing it. */
export type SecretSweep = {
  /** In no response, log line or audit row: upstream secrets, master key, signing private keys. */
  never: Record<string, string>;
  /** In no log line and no audit row: credentials the test sent, or that a response returned once. */
  notLogged: Record<string, string>;
  responses: readonly string[];
  logs: readonly string[];
  /** The audit rows, as read from the database. */
  audit: unknown;
  /** Lower bounds, so that a sweep of nothing cannot pass. */
  atLeast?: { responses?: number; logs?: number };
};

/** Fails if any secret shows up where it must not; shared by the security and the fault suites (SEC-01). */
export function sweepForSecrets(sweep: SecretSweep): void {
  const audit = json(sweep.audit);
  const logs = sweep.logs.join("\n");
  const responses = sweep.responses.join("\n");
  expect(sweep.responses.length, "responses swept").toBeGreaterThanOrEqual(sweep.atLeast?.responses ?? 1);
  expect(sweep.logs.length, "log lines swept").toBeGreaterThanOrEqual(sweep.atLeast?.logs ?? 0);
  expect(audit.length, "audit rows swept").toBeGreaterThan(2);
  for (const [label, needle] of Object.entries(sweep.never)) {
    // A short needle could match by accident; every secret the suites use is long.
    expect(needle.length, label).toBeGreaterThan(20);
    expect(responses.includes(needle), `a response leaks ${label}`).toBe(false);
  }
  for (const [label, needle] of Object.entries({ ...sweep.never, ...sweep.notLogged })) {
    expect(needle.length, label).toBeGreaterThan(20);
    expect(logs.includes(needle), `a log line leaks ${label}`).toBe(false);
    expect(audit.includes(needle), `an audit row leaks ${label}`).toBe(false);
  }
}

/**
 * SEC-01: nothing secret ever leaves the broker. Upstream secrets, the master key and the signing key's
 * private part must be in no response, log line, audit row or the JWKS; agent tokens, client secrets and
 * admin keys (which the test itself sent, and which some responses legitimately return once) must be
 * in no log line and no audit row.
 */
export async function assertNoSecretLeaks(s: Scenario, extra: { tokens?: string[] } = {}): Promise<void> {
  const jwks = s.record(await s.broker.http().get("/.well-known/jwks.json"));
  expect(jwks.status).toBe(200);
  const prisma = s.broker.keyward.db.prisma;
  const privateParts = await signingPrivateParts(prisma, s.store.masterKey);
  expect(privateParts.length).toBeGreaterThan(0);
  const never: Record<string, string> = {
    ...Object.fromEntries(Object.entries(s.secrets).map(([name, secret]) => [`upstream secret ${name}`, secret])),
    ...Object.fromEntries(masterKeyForms(s.store.masterKey).map((form, i) => [`master key (form ${i})`, form])),
    ...Object.fromEntries(privateParts.map((d, i) => [`signing private key ${i}`, d])),
  };
  const notLogged: Record<string, string> = {
    ...Object.fromEntries([...Object.values(s.tokens), ...(extra.tokens ?? [])].map((token, i) => [`agent token ${i}`, token])),
    "alice's client secret": s.alice.clientSecret,
    "bob's client secret": s.bob.clientSecret,
    "mallory's client secret": s.mallory.clientSecret,
    "admin key": s.broker.adminKey,
  };
  sweepForSecrets({
    never,
    notLogged,
    responses: s.responses,
    logs: s.broker.logs,
    audit: await prisma.auditEvent.findMany(),
    atLeast: { responses: 11, logs: 11 },
  });
  for (const d of privateParts) expect(jwks.text.includes(d)).toBe(false);
}
