import { randomUUID } from "node:crypto";
import { setTimeout } from "node:timers/promises";
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";
import type { Prisma, PrismaClient, SigningKey } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import { ADVISORY_LOCKS, lockForTransaction } from "../db/locks.js";
import type { Vault } from "../vault/vault.js";
import { activeKey, keysToRetire, rotationDue } from "./lifecycle.js";

/** The only algorithm Keyward signs with and accepts. */
export const TOKEN_ALG = "ES256";

export type PublicKeyEntry = { kid: string; key: CryptoKey; jwk: JWK };
export type KeySet = {
  active: { kid: string; privateKey: CryptoKey };
  /** Keyward's own public keys by kid: the only keys verification ever uses. */
  publicKeys: Map<string, PublicKeyEntry>;
};

export const signingKeyContext = (kid: string) => `signing-key:${kid}`;

/** Unknown kids reload the key set at most this often, so random kids cannot hammer the database. */
const UNKNOWN_KID_RELOAD_GAP_MS = 1_000;
const MAX_KID_LENGTH = 100;

export type SigningKeyOptions = {
  /** How often this replica reloads the key set, rotates when due and retires expired keys. */
  reloadMs: number;
  rotateAfterMs: number;
  leewaySeconds: number;
  onError: (err: unknown) => void;
  now?: () => Date;
};

type Actor = { actor: string; requestId?: string };

/**
 * Keyward's signing keys as this replica sees them. The private parts live only encrypted in the
 * database; every replica reloads the set periodically and at once on a kid it does not know, so a key
 * created by another replica is honoured here too.
 */
export class SigningKeys {
  #set: KeySet | undefined;
  /** When the latest load started: it saw every key committed before then. */
  #loadStartedAt = -Infinity;
  #reloading: Promise<void> | undefined;
  #pendingFreshLoad: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly prisma: PrismaClient,
    private readonly vault: Vault,
    private readonly options: SigningKeyOptions,
  ) {}

  /** Loads the key set, creating the first key on an empty database (or a new one if rotation is due). */
  static async open(prisma: PrismaClient, vault: Vault, options: SigningKeyOptions): Promise<SigningKeys> {
    const keys = new SigningKeys(prisma, vault, options);
    await keys.#createKey({ actor: "system" }, false);
    await keys.reload();
    return keys;
  }

  current(): KeySet {
    if (!this.#set) throw new Error("signing keys not loaded");
    return this.#set;
  }

  /**
   * For verification: one of Keyward's own public keys by kid. An unknown kid may name a key another
   * replica has just created, so it waits for a load that started after the token arrived (loads for
   * unknown kids are shared, and at most one a second), then looks again.
   */
  async publicKey(kid: string): Promise<PublicKeyEntry | undefined> {
    const known = this.current().publicKeys.get(kid);
    if (known || kid.length > MAX_KID_LENGTH) return known;
    await this.#loadStartedAfter(this.#now().getTime()).catch(this.options.onError);
    return this.current().publicKeys.get(kid);
  }

  /** Re-reads the live keys; concurrent callers share one reload. */
  reload(): Promise<void> {
    if (!this.#reloading) {
      this.#loadStartedAt = this.#now().getTime();
      this.#reloading = this.#load().finally(() => (this.#reloading = undefined));
    }
    return this.#reloading;
  }

  #loadStartedAfter(since: number): Promise<void> {
    // Strictly after: a load started in the same millisecond may have read the keys before the token came.
    if (this.#loadStartedAt > since) return this.#reloading ?? Promise.resolve();
    this.#pendingFreshLoad ??= (async () => {
      const wait = this.#loadStartedAt + UNKNOWN_KID_RELOAD_GAP_MS - this.#now().getTime();
      if (wait > 0) await setTimeout(wait);
      await this.#reloading?.catch(() => {}); // a load in flight started too early to count
      // Everyone waiting on this promise arrived before the load below starts; later arrivals wait for the next.
      this.#pendingFreshLoad = undefined;
      await this.reload();
    })();
    return this.#pendingFreshLoad;
  }

  /** Makes a new active key now (admin request); the old ones stay until their tokens expire. */
  async rotate(meta: Actor): Promise<{ kid: string; createdAt: Date }> {
    const created = (await this.#createKey(meta, true))!; // forced: never null
    await this.reload();
    return created;
  }

  /** Every key, newest first, with what the API may show of it (never the private part). */
  async list() {
    const rows = await this.prisma.signingKey.findMany({ orderBy: { createdAt: "desc" } });
    const active = activeKey(rows.filter((r) => r.retiredAt === null));
    return rows.map((r) => ({ kid: r.kid, alg: r.alg, active: r.kid === active?.kid, createdAt: r.createdAt, retiredAt: r.retiredAt }));
  }

  /** The periodic work: rotate when due, retire keys whose tokens have all expired, reload. */
  async maintain(): Promise<void> {
    try {
      await this.#createKey({ actor: "system" }, false);
      await this.#retireExpired();
    } finally {
      // Whatever became of this replica's own part: one that skipped the reload would go on signing with a
      // key the others have replaced, and once they retire it, its tokens are refused everywhere else.
      await this.reload();
    }
  }

  start(): void {
    this.#timer = setInterval(() => this.maintain().catch(this.options.onError), this.options.reloadMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #now(): Date {
    return this.options.now?.() ?? new Date();
  }

  async #liveRows(db: Pick<PrismaClient, "signingKey"> = this.prisma): Promise<SigningKey[]> {
    return db.signingKey.findMany({ where: { retiredAt: null } });
  }

  async #load(): Promise<void> {
    const rows = await this.#liveRows();
    const newest = activeKey(rows);
    if (!newest) throw new Error("no live signing key");
    const publicKeys = new Map<string, PublicKeyEntry>();
    for (const row of rows) {
      const jwk = row.publicJwk as JWK;
      const known = this.#set?.publicKeys.get(row.kid);
      publicKeys.set(row.kid, known ?? { kid: row.kid, jwk, key: (await importJWK(jwk, TOKEN_ALG)) as CryptoKey });
    }
    const active =
      this.#set?.active.kid === newest.kid
        ? this.#set.active
        : { kid: newest.kid, privateKey: await this.#privateKey(newest) };
    this.#set = { active, publicKeys };
  }

  async #privateKey(row: SigningKey): Promise<CryptoKey> {
    const jwk = JSON.parse(this.vault.decrypt(row.privateCiphertext, signingKeyContext(row.kid))) as JWK;
    return (await importJWK(jwk, TOKEN_ALG)) as CryptoKey;
  }

  /** Creates a key (always when `force`, else only when rotation is due), one replica at a time. */
  async #createKey(meta: Actor, force: boolean): Promise<{ kid: string; createdAt: Date } | null> {
    if (!force && !rotationDue(await this.#liveRows(), this.#now(), this.options.rotateAfterMs)) return null;
    const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: TOKEN_ALG, use: "sig" };
    const privateCiphertext = this.vault.encrypt(JSON.stringify(await exportJWK(privateKey)), signingKeyContext(kid));
    return this.prisma.$transaction(async (tx) => {
      await lockForTransaction(tx, ADVISORY_LOCKS.signingKeyRotation);
      // Checked again under the lock: another replica may have rotated meanwhile.
      const live = await this.#liveRows(tx);
      const now = this.#now();
      if (!force && !rotationDue(live, now, this.options.rotateAfterMs)) return null;
      const row = await tx.signingKey.create({ data: { kid, alg: TOKEN_ALG, publicJwk, privateCiphertext, createdAt: now } });
      const previous = activeKey(live);
      // The very first key of an empty database is not a rotation.
      if (previous) await this.#audit(tx, meta, { action: "signing_key.rotate", kid, previousKid: previous.kid });
      return { kid: row.kid, createdAt: row.createdAt };
    });
  }

  async #retireExpired(): Promise<void> {
    const live = await this.#liveRows();
    const candidates = live.filter((k) => k.kid !== activeKey(live)?.kid).map((k) => k.kid);
    if (candidates.length === 0) return;
    const expiries = await this.prisma.issuedToken.groupBy({
      by: ["kid"],
      where: { kid: { in: candidates } },
      _max: { expiresAt: true },
    });
    const lastExpiry = new Map(expiries.flatMap((e) => (e._max.expiresAt ? [[e.kid, e._max.expiresAt] as const] : [])));
    const now = this.#now();
    const retire = keysToRetire(live, lastExpiry, now, {
      graceMs: 2 * this.options.reloadMs,
      leewaySeconds: this.options.leewaySeconds,
    });
    for (const kid of retire) {
      await this.prisma.$transaction(async (tx) => {
        // Another replica may have retired it first: only the one that does records it.
        const { count } = await tx.signingKey.updateMany({ where: { kid, retiredAt: null }, data: { retiredAt: now } });
        if (count === 1) await this.#audit(tx, { actor: "system" }, { action: "signing_key.retire", kid });
      });
    }
  }

  async #audit(tx: Prisma.TransactionClient, meta: Actor, details: Record<string, string>): Promise<void> {
    await appendAudit(tx, { kind: "admin.change", actor: meta.actor, requestId: meta.requestId, details });
  }
}

export function jwks(keys: KeySet): { keys: JWK[] } {
  return { keys: [...keys.publicKeys.values()].map((k) => k.jwk) };
}
