import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

// scrypt at N=2^15 (~50 ms here): slow enough to make offline guessing of a leaked hash expensive.
const PARAMS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KEY_BYTES = 32;

function scryptAsync(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export const newClientSecret = () => "kws_" + randomBytes(32).toString("base64url");

export function newClientCredentials(): { clientId: string; clientSecret: string } {
  return { clientId: "kwc_" + randomBytes(12).toString("base64url"), clientSecret: newClientSecret() };
}

/** `scrypt$N$r$p$salt$hash`, so parameters can be raised later without breaking stored hashes. */
export async function hashClientSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, PARAMS);
  return ["scrypt", PARAMS.N, PARAMS.r, PARAMS.p, salt.toString("base64url"), hash.toString("base64url")].join("$");
}

// Verified against when the client id is unknown, so both paths cost one scrypt.
const DUMMY_HASH = await hashClientSecret(randomBytes(32).toString("base64url"));

export async function verifyClientSecret(secret: string, stored: string | undefined): Promise<boolean> {
  const [scheme, n, r, p, saltText, hashText] = (stored ?? DUMMY_HASH).split("$");
  if (scheme !== "scrypt" || !saltText || !hashText) return false;
  const expected = Buffer.from(hashText, "base64url");
  const actual = await scryptAsync(secret, Buffer.from(saltText, "base64url"), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: PARAMS.maxmem,
  });
  return stored !== undefined && actual.length === expected.length && timingSafeEqual(actual, expected);
}
