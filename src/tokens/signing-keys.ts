import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";
import type { PrismaClient } from "@prisma/client";
import type { Vault } from "../vault/vault.js";

/** The only algorithm Keyward signs with and accepts. */
export const TOKEN_ALG = "ES256";

export type PublicKeyEntry = { kid: string; key: CryptoKey; jwk: JWK };
export type KeySet = {
  active: { kid: string; privateKey: CryptoKey };
  /** Keyward's own public keys by kid: the only keys verification ever uses. */
  publicKeys: Map<string, PublicKeyEntry>;
};

const privateContext = (kid: string) => `signing-key:${kid}`;

async function createSigningKey(prisma: PrismaClient, vault: Vault): Promise<void> {
  const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: TOKEN_ALG, use: "sig" };
  const privateJwk = await exportJWK(privateKey);
  await prisma.signingKey.create({
    data: {
      kid,
      alg: TOKEN_ALG,
      publicJwk,
      privateCiphertext: vault.encrypt(JSON.stringify(privateJwk), privateContext(kid)),
    },
  });
}

/** Loads the live signing keys, creating the first one on an empty database. */
export async function loadKeySet(prisma: PrismaClient, vault: Vault): Promise<KeySet> {
  let rows = await prisma.signingKey.findMany({ where: { retiredAt: null }, orderBy: { createdAt: "desc" } });
  if (rows.length === 0) {
    await createSigningKey(prisma, vault);
    rows = await prisma.signingKey.findMany({ where: { retiredAt: null }, orderBy: { createdAt: "desc" } });
  }
  const newest = rows[0]!;
  const privateJwk = JSON.parse(vault.decrypt(newest.privateCiphertext, privateContext(newest.kid))) as JWK;
  const publicKeys = new Map<string, PublicKeyEntry>();
  for (const row of rows) {
    const jwk = row.publicJwk as JWK;
    publicKeys.set(row.kid, { kid: row.kid, jwk, key: (await importJWK(jwk, TOKEN_ALG)) as CryptoKey });
  }
  return {
    active: { kid: newest.kid, privateKey: (await importJWK(privateJwk, TOKEN_ALG)) as CryptoKey },
    publicKeys,
  };
}

export function jwks(keys: KeySet): { keys: JWK[] } {
  return { keys: [...keys.publicKeys.values()].map((k) => k.jwk) };
}
