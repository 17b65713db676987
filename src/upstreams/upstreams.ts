import { randomUUID, X509Certificate } from "node:crypto";
import type { Prisma, PrismaClient, RetiredUpstreamCredential, Upstream } from "@prisma/client";
import type { Dispatcher } from "undici";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { conflict, credentialUnavailable, notFound, validationFailed } from "../http/errors.js";
import type { ChangeFeed } from "../change-feed/feed.js";
import { RowCache } from "../change-feed/row-cache.js";
import { slug } from "../http/schemas.js";
import type { Vault } from "../vault/vault.js";
import { upstreamPolicyFields, type Protocol } from "../policy/rules.js";
import { httpUrl, type CompileContext } from "./credentials/contract.js";
import {
  authConfigSchema,
  compileCredential,
  encodeSecret,
  secretInput,
  secretProblems,
  type AuthConfig,
  type SecretInput,
  type SecretProblem,
  type UpstreamCredential,
} from "./credentials/index.js";
import { upstreamPolicyColumns } from "./policy-columns.js";
import { compileRedaction, secretsCombiner, type Redaction } from "../redaction/redaction.js";
import { keptAfterRetiring, liveReplaced, retire, ROTATION_OVERLAP_MS, type RetiredCredential, type StoredSecrets } from "./retired-credentials.js";

const baseUrl = httpUrl.transform((url) => url.replace(/\/+$/, ""));

/**
 * `tls.ca`: the PEM of a private CA the upstream's certificate chains to (tests, internal APIs). Trusted
 * for this upstream only, instead of the system's CAs.
 */
const tlsSettings = z.strictObject({
  ca: z
    .string()
    .max(65_536)
    .refine((pem) => {
      try {
        return new X509Certificate(pem).ca;
      } catch {
        return false;
      }
    }, "a PEM CA certificate"),
});
/** Environment variables `keyward run` sets to a placeholder for this upstream (e.g. GITHUB_TOKEN). */
const placeholders = z.array(z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, "an environment variable name, e.g. GITHUB_TOKEN")).max(20);

export const createUpstreamBody = z
  .strictObject({
    name: slug,
    baseUrl,
    environment: slug,
    auth: authConfigSchema,
    secret: secretInput,
    tls: tlsSettings.optional(),
    placeholders: placeholders.optional(),
    ...upstreamPolicyFields,
  })
  .superRefine((body, ctx) => {
    for (const problem of secretProblems(body.auth.type, body.secret)) ctx.addIssue({ code: "custom", ...problem });
  });
/** A change of kind usually needs a new secret too: both can be sent at once. */
export const updateUpstreamBody = z
  .strictObject({
    baseUrl: baseUrl.optional(),
    environment: slug.optional(),
    auth: authConfigSchema.optional(),
    secret: secretInput.optional(),
    tls: tlsSettings.nullable().optional(),
    placeholders: placeholders.optional(),
    ...upstreamPolicyFields,
  })
  .refine((b) => Object.keys(b).length > 0, "nothing to update");
export const setSecretBody = z.strictObject({ secret: secretInput });

/**
 * The credential config as it was checked when written, not parsed again: one written before a rule it
 * breaks (a header name reserved since) must still be replaceable. The proxy parses it (#compile).
 */
const storedAuth = (row: Upstream) => row.authConfig as AuthConfig;

/** A secret that does not fit its kind is refused when written, never discovered by the proxy. */
function assertSecretFits(problems: SecretProblem[]): void {
  if (problems.length > 0) {
    throw validationFailed(problems.map((p) => ({ path: "/" + p.path.join("/"), message: p.message })));
  }
}

/** What the API shows of an upstream: never the secret, only that it is set and when it last changed. */
export function upstreamView(u: Upstream) {
  return {
    id: u.id,
    name: u.name,
    baseUrl: u.baseUrl,
    environment: u.environment,
    protocol: u.protocol as Protocol,
    presets: u.presets,
    auth: u.authConfig as AuthConfig,
    secret: { set: true, updatedAt: u.secretUpdatedAt },
    // The CA is not secret, but like the secret it is only ever written: what is trusted shows as a fingerprint.
    tls: u.tlsCa === null ? null : { ca: { set: true, sha256: new X509Certificate(u.tlsCa).fingerprint256 } },
    placeholders: u.placeholders,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
  };
}

export const secretContext = (upstreamId: string) => `upstream-secret:${upstreamId}`;
export const retiredSecretsContext = (retiredId: string) => `retired-upstream-secrets:${retiredId}`;

/** A replaced credential's stored secrets, as the proxy reads them with its upstream. */
type StoredRetired = Pick<RetiredUpstreamCredential, "id" | "secretsCiphertext" | "expiresAt">;
/** An upstream as the proxy reads it: with the replaced credentials whose secrets are still redacted. */
export type UpstreamRow = Upstream & { retiredCredentials: StoredRetired[] };

/**
 * The replaced credentials still redacted when read: deleted ones go with the upstream's change, those
 * that expire later are left out by the proxy when they do.
 */
const withRetired = () =>
  ({
    retiredCredentials: {
      where: { expiresAt: { gt: new Date() } },
      orderBy: { retiredAt: "asc" },
      select: { id: true, secretsCiphertext: true, expiresAt: true },
    },
  }) satisfies Prisma.UpstreamInclude;

type Actor = { actor: string; requestId: string };

/** Upstreams the proxy keeps in memory at most (the least recently used go first). */
const MAX_CACHED_UPSTREAMS = 10_000;

/** The origins a stored secret is sent to: the upstream's, and its token endpoint's where the kind has one. */
function secretOrigins(baseUrl: string, auth: AuthConfig): string[] {
  return [baseUrl, ...(auth.type === "oauth2-client-credentials" ? [auth.tokenUrl] : [])].map((url) => new URL(url).origin);
}

function sendsSecretElsewhere(stored: { baseUrl: string; auth: AuthConfig }, input: { baseUrl?: string; auth?: AuthConfig }): boolean {
  const before = new Set(secretOrigins(stored.baseUrl, stored.auth));
  return secretOrigins(input.baseUrl ?? stored.baseUrl, input.auth ?? stored.auth).some((origin) => !before.has(origin));
}

export class Upstreams {
  // Compiled credentials by upstream id, with the stored fields they were compiled from. They hold the
  // OAuth and GitHub token caches, so they live across requests; a change to any of those fields, made
  // on this replica or another, compiles a new one and drops the old tokens.
  // With each, the credentials it replaced whose secrets are still redacted (src/upstreams/retired-credentials.ts):
  // those stored, by the ids they were read with, and those replaced on this replica, for the tokens they minted.
  readonly #compiled = new Map<
    string,
    { source: string; upstream: CompiledUpstream; storedIds: string; stored: readonly StoredSecrets[]; retired: readonly RetiredCredential[] }
  >();
  /** The same, by the cached row it was compiled from: a lookup without re-reading the stored fields. */
  readonly #compiledByRow = new WeakMap<Upstream, CompiledUpstream>();
  /** The proxy's view of upstreams, by name, kept current by the change feed (migration 0005). */
  readonly #byName: RowCache<UpstreamRow | null>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly vault: Vault,
    /** For credential kinds that call a token endpoint: the proxy's dispatcher, with its timeouts. */
    private readonly dispatcher: Dispatcher,
    /** How long one exchange with a token endpoint may take in all (connect, answer, body). */
    private readonly tokenDeadlineMs: number,
    private readonly changes: Pick<ChangeFeed, "isCurrent" | "follow" | "committedHere" | "committedEverywhere">,
    /** A dispatcher trusting one private CA (an upstream's `tls.ca`). */
    private readonly dispatcherTrusting: (ca: string) => Dispatcher = () => {
      throw new Error("no dispatcher for private CAs");
    },
  ) {
    this.#byName = new RowCache(changes, {
      table: "Upstream",
      maxEntries: MAX_CACHED_UPSTREAMS,
      read: (name) => this.prisma.upstream.findUnique({ where: { name }, include: withRetired() }),
      readMany: async (names) => {
        const rows = await this.prisma.upstream.findMany({ where: { name: { in: names } }, include: withRetired() });
        return new Map(rows.map((row) => [row.name, row]));
      },
      missing: null,
    });
  }

  /**
   * The upstream as stored now, for the proxy; null if there is none. From memory: a change drops it at
   * once on this replica and, announced by the upstream's trigger, on every other.
   */
  findByName(name: string): Promise<UpstreamRow | null> {
    return this.#byName.get(name);
  }

  async create(input: z.infer<typeof createUpstreamBody>, meta: Actor) {
    const id = randomUUID();
    const created = await this.prisma.$transaction(async (tx) => {
      if (await tx.upstream.findUnique({ where: { name: input.name } })) throw conflict(`upstream ${input.name} exists`);
      const row = await tx.upstream.create({
        data: {
          id,
          name: input.name,
          baseUrl: input.baseUrl,
          environment: input.environment,
          authConfig: input.auth,
          tlsCa: input.tls?.ca ?? null,
          placeholders: input.placeholders ?? [],
          ...upstreamPolicyColumns(input.baseUrl, input.protocol ?? "http", input.presets),
          ...this.#secretFields(id, input.secret),
        },
      });
      await this.#audit(tx, meta, "upstream.create", row);
      return upstreamView(row);
    });
    // A lookup of the name before it existed may be cached.
    await this.changes.committedEverywhere({ table: "Upstream", key: input.name });
    return created;
  }

  async list() {
    return (await this.prisma.upstream.findMany({ orderBy: { name: "asc" } })).map(upstreamView);
  }

  async get(name: string) {
    return upstreamView(await this.#find(this.prisma, name));
  }

  async update(name: string, input: z.infer<typeof updateUpstreamBody>, meta: Actor) {
    const updated = await this.prisma.$transaction(async (tx) => {
      const existing = await this.#findForUpdate(tx, name);
      const stored = storedAuth(existing);
      const storedType = stored.type;
      const type = input.auth?.type ?? storedType;
      if (input.secret !== undefined) assertSecretFits(secretProblems(type, input.secret));
      // A secret is only ever used by the kind it was checked for.
      else if (type !== storedType) assertSecretFits([{ path: ["secret"], message: `a change of kind to ${type} needs its secret in the same request` }]);
      // Otherwise a manage-role key could point a stored credential it cannot read at a host it controls:
      // the upstream itself, or the token endpoint the secret is exchanged at.
      else if (sendsSecretElsewhere({ baseUrl: existing.baseUrl, auth: stored }, input)) {
        assertSecretFits([{ path: ["secret"], message: "sending the stored secret to another origin needs it in the same request" }]);
      }
      // Trusting another CA could send the stored secret to whoever holds that CA's key: the same rule.
      else if (input.tls !== undefined && (input.tls?.ca ?? null) !== existing.tlsCa) {
        assertSecretFits([{ path: ["secret"], message: "changing the CA the secret is sent under needs the secret in the same request" }]);
      }
      const row = await tx.upstream.update({
        where: { name },
        data: {
          baseUrl: input.baseUrl,
          environment: input.environment,
          authConfig: input.auth,
          tlsCa: input.tls === undefined ? undefined : (input.tls?.ca ?? null),
          placeholders: input.placeholders,
          ...upstreamPolicyColumns(
            input.baseUrl ?? existing.baseUrl,
            input.protocol ?? (existing.protocol as Protocol),
            input.presets ?? existing.presets,
          ),
          ...(input.secret !== undefined && this.#secretFields(existing.id, input.secret)),
        },
      });
      // A new secret or kind may replace the credential; a new base URL or CA sends the same one elsewhere.
      if (input.secret !== undefined || input.auth !== undefined) await this.#retire(tx, existing, row);
      await this.#audit(tx, meta, "upstream.update", row);
      if (input.secret !== undefined) await this.#audit(tx, meta, "upstream.set_secret", row);
      return upstreamView(row);
    });
    await this.changes.committedEverywhere({ table: "Upstream", key: name });
    return updated;
  }

  async setSecret(name: string, secret: SecretInput, meta: Actor) {
    const updated = await this.prisma.$transaction(async (tx) => {
      const existing = await this.#findForUpdate(tx, name);
      assertSecretFits(secretProblems(storedAuth(existing).type, secret));
      const row = await tx.upstream.update({ where: { name }, data: this.#secretFields(existing.id, secret) });
      await this.#retire(tx, existing, row);
      await this.#audit(tx, meta, "upstream.set_secret", row);
      return upstreamView(row);
    });
    await this.changes.committedEverywhere({ table: "Upstream", key: name });
    return updated;
  }

  async remove(name: string, meta: Actor) {
    const removed = await this.prisma.$transaction(async (tx) => {
      const row = await this.#find(tx, name);
      const grants = await tx.grant.count({ where: { upstreamId: row.id } });
      if (grants > 0) throw conflict(`upstream ${name} is used by ${grants} grant(s); delete them first`);
      await tx.upstream.delete({ where: { id: row.id } });
      await this.#audit(tx, meta, "upstream.delete", row);
      return row;
    });
    void this.#compiled.get(removed.id)?.upstream.dispatcher?.close().catch(() => {});
    this.#compiled.delete(removed.id);
    await this.changes.committedEverywhere({ table: "Upstream", key: name });
  }

  /**
   * What the proxy needs to forward to this upstream: where, and how to present its credential. Compiled
   * once per version of the stored row (see #compiled).
   */
  compileForProxy(row: UpstreamRow): CompiledUpstream {
    let upstream = this.#compiledByRow.get(row);
    if (!upstream) {
      upstream = this.#compile(row);
      this.#compiledByRow.set(row, upstream);
    }
    return upstream;
  }

  #compile(row: UpstreamRow): CompiledUpstream {
    const source = JSON.stringify([row.baseUrl, row.environment, row.authConfig, row.secretCiphertext, row.tlsCa]);
    const storedIds = row.retiredCredentials.map((r) => r.id).join();
    const cached = this.#compiled.get(row.id);
    if (cached?.source === source) {
      if (cached.storedIds === storedIds) return cached.upstream;
      // Only the stored replaced credentials changed (one was pruned): the credential and its tokens stay.
      const stored = this.#storedRetired(row);
      const upstream = this.#assemble(row, cached.upstream.credential, cached.upstream.dispatcher, stored, cached.retired);
      this.#compiled.set(row.id, { ...cached, upstream, storedIds, stored });
      return upstream;
    }
    const baseUrl = new URL(row.baseUrl);
    const dispatcher = row.tlsCa === null ? undefined : this.dispatcherTrusting(row.tlsCa);
    const credential = this.#storedCredential(row, this.#parsedAuth(row), {
      baseUrl,
      dispatcher: dispatcher ?? this.dispatcher,
      now: Date.now,
      tokenDeadlineMs: this.tokenDeadlineMs,
    });
    const stored = this.#storedRetired(row);
    // The credential it replaces here stays redacted for a while with the tokens it minted on this replica,
    // which no other replica knows of (its own secrets are among those stored).
    const retired = cached ? retire(cached.retired, cached.upstream.credential, Date.now()) : [];
    const upstream = this.#assemble(row, credential, dispatcher, stored, retired);
    this.#compiled.set(row.id, { source, upstream, storedIds, stored, retired });
    // The replaced version's own pool closes once its calls in flight are done.
    void cached?.upstream.dispatcher?.close().catch(() => {});
    return upstream;
  }

  #assemble(
    row: Upstream,
    credential: UpstreamCredential,
    dispatcher: Dispatcher | undefined,
    stored: readonly StoredSecrets[],
    retired: readonly RetiredCredential[],
  ): CompiledUpstream {
    const baseUrl = new URL(row.baseUrl);
    const combine = secretsCombiner();
    const replacedNone = stored.length === 0 && retired.length === 0;
    let live = liveReplaced(stored, retired, Date.now());
    let last: { current: readonly string[]; replacedHere: (readonly string[])[]; redaction: Redaction } | undefined;
    return {
      name: row.name,
      environment: row.environment,
      origin: baseUrl.origin,
      basePath: baseUrl.pathname.replace(/\/+$/, ""),
      credential,
      dispatcher,
      redaction: () => {
        const current = credential.injectedSecrets();
        if (replacedNone) return compileRedaction(current);
        const now = Date.now();
        if (now >= live.changesAt) {
          live = liveReplaced(stored, retired, now);
          last = undefined;
        }
        // Between two expiries only minted tokens change the lists (the same array while none is minted).
        if (last?.current === current && live.retired.every((c, i) => c.injectedSecrets() === last!.replacedHere[i])) return last.redaction;
        const replacedHere = live.retired.map((c) => c.injectedSecrets());
        const redaction = compileRedaction(combine([current, ...live.stored, ...replacedHere]));
        last = { current, replacedHere, redaction };
        return redaction;
      },
    };
  }

  /** The stored config as the proxy parses it. */
  #parsedAuth(row: Upstream): AuthConfig {
    const auth = authConfigSchema.safeParse(row.authConfig);
    // Written before a rule it breaks (a header name reserved since): nothing is sent with it until replaced.
    if (!auth.success) {
      const problems = auth.error.issues.map((issue) => `${["auth", ...issue.path.map(String)].join(".")}: ${issue.message}`).join("; ");
      throw credentialUnavailable(`upstream ${row.name}'s stored auth is no longer accepted (${problems}); replace it with PATCH /v1/upstreams/${row.name}`);
    }
    return auth.data;
  }

  /**
   * The secrets of the replaced credentials stored with the upstream. One this broker cannot decrypt is
   * not skipped: the upstream may echo it, so nothing is sent until a broker holding its master key (the
   * previous one, during a rotation) can redact it.
   */
  #storedRetired(row: UpstreamRow): StoredSecrets[] {
    return row.retiredCredentials.map((r) => {
      let secrets: unknown;
      try {
        secrets = JSON.parse(this.vault.decrypt(r.secretsCiphertext, retiredSecretsContext(r.id)));
      } catch {
        throw credentialUnavailable(
          `upstream ${row.name}'s replaced credential ${r.id}, still redacted, cannot be decrypted with this broker's master key; give this broker the master key it is under (KEYWARD_MASTER_KEY_PREVIOUS during a rotation)`,
        );
      }
      return { secrets: Object.freeze(z.array(z.string()).parse(secrets)), until: r.expiresAt.getTime() };
    });
  }

  /**
   * Keeps the secrets the credential stored in `row` puts into calls, for every replica to redact while
   * the upstream may still echo them (ROTATION_OVERLAP_MS), and drops those stored earlier past
   * MAX_RETIRED_CREDENTIALS or past their overlap. Nothing is kept of a credential no broker of this
   * deployment could have sent (a secret under another master key, a config no longer accepted), nor of
   * one `by` still puts the same secrets into calls (a write that re-sent the secret in service): kept
   * as replaced, its copies would take the places of credentials actually replaced.
   */
  async #retire(tx: Prisma.TransactionClient, row: Upstream, by: Upstream): Promise<void> {
    let secrets: readonly string[];
    try {
      secrets = this.#injectedSecrets(row);
    } catch {
      return;
    }
    let stillInjected: readonly string[] = [];
    try {
      stillInjected = this.#injectedSecrets(by);
    } catch {
      // nothing the new row sends can be known: all of the old one's is replaced
    }
    if (secrets.every((secret) => stillInjected.includes(secret))) return;
    const now = Date.now();
    const id = randomUUID();
    const live = await tx.retiredUpstreamCredential.findMany({
      where: { upstreamId: row.id, expiresAt: { gt: new Date(now) } },
      orderBy: { retiredAt: "asc" },
      select: { id: true, expiresAt: true },
    });
    const kept = keptAfterRetiring(
      live.map((r) => ({ id: r.id, until: r.expiresAt.getTime() })),
      { id, until: now + ROTATION_OVERLAP_MS },
      now,
    );
    await tx.retiredUpstreamCredential.create({
      data: {
        id,
        upstreamId: row.id,
        secretsCiphertext: this.vault.encrypt(JSON.stringify(secrets), retiredSecretsContext(id)),
        secretsKeyId: this.vault.keyId,
        retiredAt: new Date(now),
        expiresAt: new Date(now + ROTATION_OVERLAP_MS),
      },
    });
    await tx.retiredUpstreamCredential.deleteMany({ where: { upstreamId: row.id, id: { notIn: kept.map((k) => k.id) } } });
  }

  #injectedSecrets(row: Upstream): readonly string[] {
    const context = { baseUrl: new URL(row.baseUrl), dispatcher: this.dispatcher, now: Date.now, tokenDeadlineMs: this.tokenDeadlineMs };
    return this.#storedCredential(row, this.#parsedAuth(row), context).injectedSecrets();
  }

  /** Deletes the stored secrets of replaced credentials whose overlap has ended, of every upstream. */
  async pruneRetired(): Promise<number> {
    const { count } = await this.prisma.retiredUpstreamCredential.deleteMany({ where: { expiresAt: { lte: new Date() } } });
    return count;
  }

  #secretFields(upstreamId: string, secret: SecretInput) {
    return {
      secretCiphertext: this.vault.encrypt(encodeSecret(secret), secretContext(upstreamId)),
      secretKeyId: this.vault.keyId,
      secretUpdatedAt: new Date(),
    };
  }

  /**
   * The stored secret, decrypted and compiled with its config. A secret this broker cannot decrypt
   * (another master key) or that no longer fits its kind (a config changed beside it, a rule written since)
   * is never used: 502, nothing forwarded, and the log says what to replace, never what the secret holds.
   */
  #storedCredential(row: Upstream, auth: AuthConfig, context: CompileContext) {
    let secret: string;
    try {
      secret = this.#decrypt(row);
    } catch {
      throw credentialUnavailable(`upstream ${row.name}'s stored secret cannot be decrypted with this broker's master key; set it again with PUT /v1/upstreams/${row.name}/secret`);
    }
    try {
      return compileCredential(auth, secret, context);
    } catch (err) {
      const where = err instanceof z.ZodError ? ` (${err.issues.map((issue) => ["secret", ...issue.path.map(String)].join(".")).join(", ")})` : "";
      throw credentialUnavailable(`upstream ${row.name}'s stored secret does not fit its ${auth.type} credential${where}; set it again with PUT /v1/upstreams/${row.name}/secret`);
    }
  }

  #decrypt(row: Upstream): string {
    return this.vault.decrypt(row.secretCiphertext, secretContext(row.id));
  }

  /**
   * The row as committed now, locked until the transaction ends. The checks of a write (does the secret
   * fit the kind, does the stored secret go to a new origin) read the stored kind, URL and CA: without
   * the lock a concurrent write could change them between the check and this write, and a PATCH to
   * aws-sigv4 racing a PUT of a header secret left an aws-sigv4 upstream holding that string (ADM-15).
   */
  async #findForUpdate(tx: Prisma.TransactionClient, name: string) {
    await tx.$queryRaw`SELECT 1 FROM "Upstream" WHERE name = ${name} FOR UPDATE`;
    return this.#find(tx, name);
  }

  async #find(db: Pick<PrismaClient, "upstream">, name: string) {
    const row = await db.upstream.findUnique({ where: { name } });
    if (!row) throw notFound(`upstream ${name}`);
    return row;
  }

  async #audit(tx: Parameters<typeof appendAudit>[0], meta: Actor, action: string, row: Upstream) {
    await appendAudit(tx, {
      kind: "admin.change",
      actor: meta.actor,
      requestId: meta.requestId,
      upstream: row.name,
      details: { action, upstreamId: row.id, baseUrl: row.baseUrl, environment: row.environment, protocol: row.protocol, presets: row.presets, auth: row.authConfig as object },
    });
  }
}

export type CompiledUpstream = {
  name: string;
  environment: string;
  /** The base URL's origin, and its path without a trailing slash: what every call's URL starts with. */
  origin: string;
  basePath: string;
  credential: UpstreamCredential;
  /** Its own connection pool when it trusts a private CA (`tls.ca`); otherwise the proxy's shared one. */
  dispatcher: Dispatcher | undefined;
  /** What responses from it must not show: its credential's secrets, and those of the credentials it replaced within ROTATION_OVERLAP_MS (stored, on every replica). */
  redaction(): Redaction;
};

