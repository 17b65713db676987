import type { Prisma, PrismaClient } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import { caKeyContext } from "../forward-proxy/ca.js";
import { signingKeyContext } from "../signing-keys/signing-keys.js";
import { retiredSecretsContext, secretContext as upstreamSecretContext } from "../upstreams/upstreams.js";
import { WHICH_MASTER_KEY } from "../db/backup-seal.js";
import { RestoreRefused } from "../db/restore-refused.js";
import { OtherMasterKey, type Vault, VaultError } from "./vault.js";

/**
 * Every column Keyward stores encrypted under the master key: its table, its name and its row's key as a
 * backup's rows name them, and the associated data (`context`) it is bound to.
 */
const ENCRYPTED_COLUMNS = [
  {
    table: "Upstream",
    column: "secretCiphertext",
    key: "id",
    context: upstreamSecretContext,
    rows: async (db: PrismaClient) =>
      (await db.upstream.findMany({ select: { id: true, name: true, secretCiphertext: true } })).map((r) => ({
        id: r.id,
        ciphertext: r.secretCiphertext,
        label: `upstream ${r.name}: its secret decrypts under neither key: set it again (keyward upstream set-secret ${r.name})`,
      })),
    /** Re-encrypts one row if it is still as read; false if it changed meanwhile (or is gone). */
    rewrite: async (tx: Prisma.TransactionClient, vault: Vault, id: string, context: string) => {
      const row = await tx.upstream.findUnique({ where: { id }, select: { secretCiphertext: true } });
      if (!row || vault.isCurrent(row.secretCiphertext)) return false;
      const secretCiphertext = vault.encrypt(vault.decrypt(row.secretCiphertext, context), context);
      const { count } = await tx.upstream.updateMany({
        where: { id, secretCiphertext: row.secretCiphertext },
        data: { secretCiphertext, secretKeyId: vault.keyId },
      });
      return count === 1;
    },
  },
  {
    table: "RetiredUpstreamCredential",
    column: "secretsCiphertext",
    key: "id",
    context: retiredSecretsContext,
    rows: async (db: PrismaClient) =>
      (await db.retiredUpstreamCredential.findMany({ select: { id: true, secretsCiphertext: true, upstream: { select: { name: true } } } })).map((r) => ({
        id: r.id,
        ciphertext: r.secretsCiphertext,
        label: `upstream ${r.upstream.name}: a replaced credential it still redacts decrypts under neither key: it is deleted 24 h after it was replaced`,
      })),
    rewrite: async (tx: Prisma.TransactionClient, vault: Vault, id: string, context: string) => {
      const row = await tx.retiredUpstreamCredential.findUnique({ where: { id }, select: { secretsCiphertext: true } });
      if (!row || vault.isCurrent(row.secretsCiphertext)) return false;
      const secretsCiphertext = vault.encrypt(vault.decrypt(row.secretsCiphertext, context), context);
      const { count } = await tx.retiredUpstreamCredential.updateMany({
        where: { id, secretsCiphertext: row.secretsCiphertext },
        data: { secretsCiphertext, secretsKeyId: vault.keyId },
      });
      return count === 1;
    },
  },
  {
    table: "SigningKey",
    column: "privateCiphertext",
    key: "kid",
    context: signingKeyContext,
    rows: async (db: PrismaClient) =>
      (await db.signingKey.findMany({ select: { kid: true, privateCiphertext: true } })).map((r) => ({
        id: r.kid,
        ciphertext: r.privateCiphertext,
        label: `signing key ${r.kid}: its private part decrypts under neither key: rotate the signing keys (POST /v1/signing-keys/rotate) and let it retire`,
      })),
    rewrite: async (tx: Prisma.TransactionClient, vault: Vault, kid: string, context: string) => {
      const row = await tx.signingKey.findUnique({ where: { kid }, select: { privateCiphertext: true } });
      if (!row || vault.isCurrent(row.privateCiphertext)) return false;
      const privateCiphertext = vault.encrypt(vault.decrypt(row.privateCiphertext, context), context);
      const { count } = await tx.signingKey.updateMany({ where: { kid, privateCiphertext: row.privateCiphertext }, data: { privateCiphertext } });
      return count === 1;
    },
  },
  {
    table: "ForwardProxyCa",
    column: "keyCiphertext",
    key: "id",
    context: caKeyContext,
    rows: async (db: PrismaClient) =>
      (await db.forwardProxyCa.findMany({ select: { id: true, keyCiphertext: true } })).map((r) => ({
        id: r.id,
        ciphertext: r.keyCiphertext,
        label: `forward-proxy CA ${r.id}: its key decrypts under neither key: rotate the CA (POST /v1/forward-proxy/ca/rotate)`,
      })),
    rewrite: async (tx: Prisma.TransactionClient, vault: Vault, id: string, context: string) => {
      const row = await tx.forwardProxyCa.findUnique({ where: { id }, select: { keyCiphertext: true } });
      if (!row || vault.isCurrent(row.keyCiphertext)) return false;
      const keyCiphertext = vault.encrypt(vault.decrypt(row.keyCiphertext, context), context);
      const { count } = await tx.forwardProxyCa.updateMany({ where: { id, keyCiphertext: row.keyCiphertext }, data: { keyCiphertext, keyId: vault.keyId } });
      return count === 1;
    },
  },
] as const;

export type ReencryptResult = { reencrypted: number; remaining: number };

/**
 * Master-key rotation: re-encrypts every stored secret that is not yet under the vault's current key
 * (the vault must also hold the previous key, to read them). Each row is read, re-encrypted and written
 * back in its own transaction, with its audit event, and only if nobody changed it meanwhile, so an
 * interruption loses nothing: every row is under the old key or the new one, both readable, and running
 * again picks up where it stopped. Stops after `maxRows` rows when given. `remaining` counts the rows
 * still under another key afterwards (0 when done).
 */
export async function reencryptSecrets(
  prisma: PrismaClient,
  vault: Vault,
  options: { actor: string; maxRows?: number; onUnreadable?: (what: string) => void },
): Promise<ReencryptResult> {
  let reencrypted = 0;
  for (const column of ENCRYPTED_COLUMNS) {
    for (const { id, ciphertext, label } of await column.rows(prisma)) {
      if (vault.isCurrent(ciphertext)) continue;
      if (options.maxRows !== undefined && reencrypted >= options.maxRows) return { reencrypted, remaining: await countRemaining(prisma, vault) };
      let done: boolean;
      try {
        done = await prisma.$transaction(async (tx) => {
          if (!(await column.rewrite(tx, vault, id, column.context(id)))) return false;
          await appendAudit(tx, {
            kind: "admin.change",
            actor: options.actor,
            details: { action: "master_key.reencrypt", table: column.table, id, keyId: vault.keyId },
          });
          return true;
        });
      } catch (err) {
        // A row neither key decrypts (under a third key, or damaged) cannot be rotated: it is named, counted
        // in `remaining`, and the rest go on, instead of every row after it staying under the old key.
        if (!(err instanceof VaultError)) throw err;
        options.onUnreadable?.(label);
        continue;
      }
      if (done) reencrypted++;
    }
  }
  return { reencrypted, remaining: await countRemaining(prisma, vault) };
}

async function countRemaining(prisma: PrismaClient, vault: Vault): Promise<number> {
  let remaining = 0;
  for (const column of ENCRYPTED_COLUMNS) remaining += (await column.rows(prisma)).filter((r) => !vault.isCurrent(r.ciphertext)).length;
  return remaining;
}

/**
 * For restore: refuses a backed-up row whose secret `vault` cannot decrypt (or any secret, without a
 * vault), before anything is written, so a backup is never restored where the broker could not read it.
 * Names the table and row, never a byte of the ciphertext.
 */
export function assertRestorable(vault: Vault | null, table: string, row: Record<string, unknown>): void {
  const field = ENCRYPTED_COLUMNS.find((c) => c.table === table);
  if (!field) return;
  const [ciphertext, id] = [row[field.column], String(row[field.key])];
  if (typeof ciphertext !== "string") return;
  if (!vault) throw new RestoreRefused(`the backup's secrets are under a master key, and none is given: ${WHICH_MASTER_KEY}`);
  try {
    vault.decrypt(ciphertext, field.context(id));
  } catch (err) {
    if (err instanceof OtherMasterKey) throw new RestoreRefused(`the backup's secrets are under another master key (${table} ${id}): ${WHICH_MASTER_KEY}`);
    if (!(err instanceof VaultError)) throw err;
    throw new RestoreRefused(`the backup's ${table} ${id} does not decrypt under the master key: the backup is corrupted, or its key is another`);
  }
}
