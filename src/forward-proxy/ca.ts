import { randomUUID } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import type { PrismaClient } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import type { RowChange } from "../change-feed/changes.js";
import type { ChangeFeed, ChangeFollower } from "../change-feed/feed.js";
import { CACHE_REFRESH_MS } from "../change-feed/row-cache.js";
import { LruMap } from "../util/lru.js";
import type { Vault } from "../vault/vault.js";
import type { UpstreamHosts } from "./hosts.js";
import { constrainCaCertificate, createCaCertificate, issueHostCertificate, newRsaKeyPem, type KeyPairPem } from "./x509.js";

const CA_VALID_DAYS = 3650;
const HOST_CERT_VALID_DAYS = 7;
/** A cached host certificate is replaced once it has less than this left. */
const HOST_CERT_RENEW_MS = 86_400_000;
const MAX_CACHED_HOSTS = 1_000;

export const caKeyContext = (id: string) => `forward-proxy-ca:${id}`;

type ActiveCa = { id: string; certPem: string; keyPem: string };
type Actor = { actor: string; requestId: string };

/**
 * The forward proxy's certificate authority: its key encrypted at rest by the vault, its certificate
 * public (`GET /v1/forward-proxy/ca.pem`). Issues, and caches, one certificate per host the proxy
 * terminates TLS for; which hosts may get one is the caller's decision (only hosts an upstream names).
 * A rotation, here or on another replica (announced on the change feed), drops every cached
 * certificate: the next tunnel gets one from the new CA.
 *
 * The certificate clients trust is name-constrained to the hosts of the https upstreams (SECURITY.md,
 * "Forward proxy"): whoever steals the CA key can mint certificates only for hosts Keyward already
 * holds credentials for. When that set of hosts changes, the CA is re-issued with the same key, so
 * certificates already issued stay valid, and the new one is what `ca.pem` serves. The stored
 * certificate is the template every re-issue copies; it permits no name at all.
 */
export class ForwardProxyCa implements ChangeFollower<RowChange> {
  readonly tables = ["ForwardProxyCa"] as const;
  readonly refreshMs = CACHE_REFRESH_MS;
  /** The leaf key every host certificate of this process carries; never stored. */
  readonly #leafKeyPem = newRsaKeyPem();
  #active: Promise<ActiveCa> | null = null;
  /** The constrained certificate last served, for the CA and hosts it was re-issued for. */
  #served: { caId: string; hosts: string; certPem: string } | null = null;
  readonly #contexts = new LruMap<string, { caId: string; notAfter: number; context: SecureContext }>(MAX_CACHED_HOSTS);

  constructor(
    private readonly prisma: PrismaClient,
    private readonly vault: Vault,
    private readonly hosts: Pick<UpstreamHosts, "current">,
    changes: Pick<ChangeFeed, "follow">,
    private readonly now: () => number = Date.now,
  ) {
    changes.follow(this);
  }

  /** The CA certificate clients must trust (PEM), constrained to the hosts upstreams name now. */
  async certificatePem(): Promise<string> {
    const [ca, index] = await Promise.all([this.#current(), this.hosts.current()]);
    const hosts = index.tlsHosts.join("\0");
    if (this.#served?.caId === ca.id && this.#served.hosts === hosts) return this.#served.certPem;
    const certPem = constrainCaCertificate(ca.certPem, ca.keyPem, index.tlsHosts);
    this.#served = { caId: ca.id, hosts, certPem };
    return certPem;
  }

  /** The TLS context to present for `host` (DNS name or IP), from cache while it has a day left. */
  async contextFor(host: string): Promise<SecureContext> {
    const ca = await this.#current();
    const cached = this.#contexts.get(host);
    if (cached && cached.caId === ca.id && cached.notAfter - this.now() > HOST_CERT_RENEW_MS) return cached.context;
    const now = new Date(this.now());
    const certPem = issueHostCertificate(ca, this.#leafKeyPem, host, now, HOST_CERT_VALID_DAYS);
    const context = createSecureContext({ cert: certPem, key: this.#leafKeyPem, minVersion: "TLSv1.2" });
    this.#contexts.set(host, { caId: ca.id, notAfter: now.getTime() + HOST_CERT_VALID_DAYS * 86_400_000, context });
    return context;
  }

  /** Replaces the active CA with a new one; clients must fetch the new certificate (see SECURITY.md). */
  async rotate(meta: Actor): Promise<{ id: string; certPem: string }> {
    const created = await this.prisma.$transaction(async (tx) => {
      await tx.forwardProxyCa.updateMany({ where: { retiredAt: null }, data: { retiredAt: new Date() } });
      const row = await tx.forwardProxyCa.create({ data: this.#newCaRow() });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        details: { action: "forward_proxy_ca.rotate", caId: row.id },
      });
      return row;
    });
    this.changed();
    return { id: created.id, certPem: await this.certificatePem() };
  }

  changed(): void {
    this.#active = null;
    this.#contexts.clear();
  }

  async reload(): Promise<void> {
    await this.refresh();
  }

  /**
   * The safety net behind notifications (a rotation not heard): the host certificates are derived from the
   * active CA, not stored, so they are dropped only when another CA is active now. Dropping them on every
   * refresh re-read and decrypted the CA key and re-signed each host's certificate every 30 s.
   */
  async refresh(): Promise<void> {
    const [stored, held] = await Promise.all([
      this.prisma.forwardProxyCa.findFirst({ where: { retiredAt: null }, select: { id: true } }),
      this.#active?.catch(() => null),
    ]);
    if (!held || stored?.id !== held.id) this.changed();
  }

  #current(): Promise<ActiveCa> {
    if (!this.#active) {
      const loading = this.#loadOrCreate();
      this.#active = loading;
      // A failed load is not remembered: the next tunnel tries again.
      loading.catch(() => {
        if (this.#active === loading) this.#active = null;
      });
    }
    return this.#active;
  }

  async #loadOrCreate(): Promise<ActiveCa> {
    let row = await this.prisma.forwardProxyCa.findFirst({ where: { retiredAt: null } });
    if (!row) {
      // Two replicas starting together: the unique index on the active row lets one insert win.
      try {
        row = await this.prisma.forwardProxyCa.create({ data: this.#newCaRow() });
      } catch {
        row = await this.prisma.forwardProxyCa.findFirst({ where: { retiredAt: null } });
        if (!row) throw new Error("the forward proxy CA could be neither created nor read");
      }
    }
    return { id: row.id, certPem: row.certPem, keyPem: this.vault.decrypt(row.keyCiphertext, caKeyContext(row.id)) };
  }

  #newCaRow() {
    const id = randomUUID();
    const keyPem = newRsaKeyPem();
    const certPem = createCaCertificate(keyPem, `Keyward forward proxy CA ${id.slice(0, 8)}`, new Date(this.now()), CA_VALID_DAYS, []);
    return { id, certPem, keyCiphertext: this.vault.encrypt(keyPem, caKeyContext(id)), keyId: this.vault.keyId };
  }
}

export type { KeyPairPem };
