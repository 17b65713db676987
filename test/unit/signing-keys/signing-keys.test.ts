import { randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair } from "jose";
import type { PrismaClient, SigningKey } from "@prisma/client";
import { jwks, signingKeyContext, SigningKeys } from "../../../src/signing-keys/signing-keys.js";
import { Vault } from "../../../src/vault/vault.js";

const vault = new Vault(randomBytes(32));

async function keyRow(createdAt = new Date()): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = randomUUID();
  return {
    kid,
    alg: "ES256",
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" },
    privateCiphertext: vault.encrypt(JSON.stringify(await exportJWK(privateKey)), signingKeyContext(kid)),
    createdAt,
    retiredAt: null,
  };
}

/** Just enough of the database for loading keys: the rows, and how often they were read. */
function fakeStore(rows: SigningKey[]) {
  const store = {
    reads: 0,
    rows,
    prisma: {
      signingKey: {
        findMany: async () => {
          store.reads++;
          return store.rows.filter((r) => r.retiredAt === null);
        },
      },
    } as unknown as PrismaClient,
  };
  return store;
}

const options = { reloadMs: 60_000, rotateAfterMs: 30 * 86_400_000, leewaySeconds: 5, onError: (err: unknown) => { throw err; } };

describe("SigningKeys: the key set one replica holds", () => {
  it("signs with the newest live key and publishes every live public key, never a private part", async () => {
    const older = await keyRow(new Date(Date.now() - 1000));
    const newer = await keyRow();
    const keys = await SigningKeys.open(fakeStore([older, newer]).prisma, vault, options);
    expect(keys.current().active.kid).toBe(newer.kid);
    const published = jwks(keys.current()).keys;
    expect(published.map((k) => k.kid).sort()).toEqual([older.kid, newer.kid].sort());
    for (const k of published) expect(k).not.toHaveProperty("d");
  });

  it("an unknown kid waits for one fresh load, shared by every caller and at most one a second", async () => {
    const store = fakeStore([await keyRow()]);
    const keys = await SigningKeys.open(store.prisma, vault, options);
    const readsAfterOpen = store.reads;

    // Another replica creates a key; tokens naming it arrive at once, many together.
    const created = await keyRow();
    store.rows.push(created);
    const startedAt = Date.now();
    const found = await Promise.all(Array.from({ length: 10 }, () => keys.publicKey(created.kid)));
    for (const entry of found) expect(entry?.kid).toBe(created.kid);
    expect(store.reads - readsAfterOpen).toBe(1);
    // The load just before (at open) was under a second ago, so this one waited for the gap.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);

    // Random kids: each burst costs at most one read, and finds nothing.
    const random = await Promise.all(Array.from({ length: 10 }, () => keys.publicKey(randomUUID())));
    expect(random.every((e) => e === undefined)).toBe(true);
    expect(store.reads - readsAfterOpen).toBe(2);
  });

  it("a load that started in the same millisecond as the token came does not count as fresh", async () => {
    // The clock stands still: the load at open and the token's arrival share a millisecond, and the load
    // may have read the keys before the key that signed the token was created.
    const at = new Date();
    const store = fakeStore([await keyRow()]);
    const keys = await SigningKeys.open(store.prisma, vault, { ...options, now: () => at });
    const created = await keyRow();
    store.rows.push(created);
    expect((await keys.publicKey(created.kid))?.kid).toBe(created.kid);
  });

  it("a known kid never reads the database; an absurdly long one is not looked up", async () => {
    const row = await keyRow();
    const store = fakeStore([row]);
    const keys = await SigningKeys.open(store.prisma, vault, options);
    const reads = store.reads;
    expect((await keys.publicKey(row.kid))?.kid).toBe(row.kid);
    expect(await keys.publicKey("k".repeat(101))).toBeUndefined();
    expect(store.reads).toBe(reads);
  });

  it("a retired key leaves the set on the next reload", async () => {
    const older = await keyRow(new Date(Date.now() - 1000));
    const newer = await keyRow();
    const store = fakeStore([older, newer]);
    const keys = await SigningKeys.open(store.prisma, vault, options);
    older.retiredAt = new Date();
    await keys.reload();
    expect([...keys.current().publicKeys.keys()]).toEqual([newer.kid]);
  });
});
