import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { KeywardError } from "../http/errors.js";

// scrypt at N=2^15 (~50 ms here): slow enough to make offline guessing of a leaked hash expensive.
const PARAMS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KEY_BYTES = 32;

/**
 * One scrypt at a time. scrypt runs on libuv's thread pool (4 threads), which the audit spool's writes
 * and fdatasyncs share, and holds N·r·128 bytes (32 MiB) while it runs. Unbounded, token requests with
 * wrong secrets (two scrypts each, see Agents.authenticate; no credentials needed) took every thread,
 * and proxied calls waited behind them for their audit events: 2,100 calls/s at c=16 fell to 18 with 8
 * such requests at a time, and the broker's RSS rose to 309 MiB. One at a time leaves the pool's other
 * threads to the spool. Past MAX_SCRYPT_WAITING queued (~1 s of scrypt here), a verification is refused
 * at once (503 client_auth_busy, before any credential is looked at) rather than held longer.
 */
export const MAX_SCRYPT_WAITING = 16;
let scryptRunning = false;
const scryptWaiting: (() => void)[] = [];

const clientAuthBusy = () =>
  new KeywardError(503, "client_auth_busy", "too many client secrets are waiting to be verified; retry later", { headers: { "retry-after": "1" } });

async function scryptAsync(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  if (scryptRunning) {
    if (scryptWaiting.length >= MAX_SCRYPT_WAITING) throw clientAuthBusy();
    // Woken by the scrypt before it, which hands over its turn (scryptRunning stays true).
    await new Promise<void>((resolve) => scryptWaiting.push(resolve));
  } else scryptRunning = true;
  try {
    return await new Promise<Buffer>((resolve, reject) =>
      scrypt(secret, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))),
    );
  } finally {
    const next = scryptWaiting.shift();
    if (next) next();
    else scryptRunning = false;
  }
}

export const newClientSecret = () => "kws_" + randomBytes(32).toString("base64url");

const CLIENT_ID = /^kwc_[A-Za-z0-9_-]{1,64}$/;

/**
 * Whether text has the shape of a client id (newClientCredentials makes every one). Anything else names
 * no agent whichever way a client presented it (HTTP Basic once form-decoded, a form field, a client
 * assertion's unverified issuer): it is not looked up, since PostgreSQL fails a query on a NUL or an
 * unpaired surrogate, and not recorded as an actor.
 */
export const isClientId = (text: string): boolean => CLIENT_ID.test(text);

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
