import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertPrivate } from "../util/private-path.js";

const FORMAT = "v1";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class VaultError extends Error {}

/** A ciphertext under a master key this vault does not hold: the remedy is another key, not another secret. */
export class OtherMasterKey extends VaultError {}

/**
 * Envelope for secrets at rest: AES-256-GCM with a random nonce, under the master key.
 * Ciphertexts read `v1.<keyId>.<nonce>.<ciphertext+tag>`; the key id lets a later master-key rotation
 * find what is still under the old key. `context` is bound as associated data, so a ciphertext copied
 * onto another row (another upstream, another signing key) fails to decrypt.
 *
 * During a master-key rotation the previous key is given too: it still decrypts what is under it
 * (picked by the envelope's key id), but everything new is encrypted under the current key only.
 */
export class Vault {
  readonly keyId: string;
  readonly #key: Buffer;
  readonly #decryptionKeys: Map<string, Buffer>;

  constructor(masterKey: Buffer, previousMasterKey?: Buffer) {
    if (masterKey.length !== 32) throw new VaultError("master key must be 32 bytes");
    if (previousMasterKey && previousMasterKey.length !== 32) throw new VaultError("previous master key must be 32 bytes");
    this.#key = masterKey;
    this.keyId = keyIdOf(masterKey);
    this.#decryptionKeys = new Map([[this.keyId, masterKey]]);
    if (previousMasterKey) this.#decryptionKeys.set(keyIdOf(previousMasterKey), previousMasterKey);
  }

  /** Whether an envelope is already under the current master key (what a rotation leaves alone). */
  isCurrent(envelope: string): boolean {
    return envelope.split(".")[1] === this.keyId;
  }

  encrypt(plaintext: string, context: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return [FORMAT, this.keyId, nonce.toString("base64url"), body.toString("base64url")].join(".");
  }

  decrypt(envelope: string, context: string): string {
    const [format, keyId, nonceText, bodyText] = envelope.split(".");
    if (format !== FORMAT || !nonceText || !bodyText) throw new VaultError("unreadable ciphertext");
    const key = keyId === undefined ? undefined : this.#decryptionKeys.get(keyId);
    if (!key) throw new OtherMasterKey(`ciphertext is under another master key (${keyId})`);
    const nonce = Buffer.from(nonceText, "base64url");
    const body = Buffer.from(bodyText, "base64url");
    // A body shorter than a tag would hand setAuthTag a short tag (Node accepts 4- and 8-byte GCM tags).
    if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) throw new VaultError("unreadable ciphertext");
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
        "utf8",
      );
    } catch {
      throw new VaultError("ciphertext failed authentication");
    }
  }

  /** Never print key material, even by accident (console.log(vault), util.inspect). */
  toJSON() {
    return { keyId: this.keyId };
  }
  [Symbol.for("nodejs.util.inspect.custom")]() {
    return `Vault(${this.keyId})`;
  }
}

const keyIdOf = (masterKey: Buffer) =>
  createHash("sha256").update("keyward-key-id").update(masterKey).digest("hex").slice(0, 16);

// Exactly 32 bytes in base64 (or base64url): 43 characters and at most one "=". Checked before decoding
// because Buffer.from skips characters outside the alphabet, so a mangled key could otherwise decode.
const MASTER_KEY_TEXT = /^(?:[A-Za-z0-9+/]{43}|[A-Za-z0-9_-]{43})=?$/;

/** The 32-byte key a master key's text encodes, or null if it encodes none (the config schema's check). */
export function decodeMasterKey(text: string): Buffer | null {
  const trimmed = text.trim();
  return MASTER_KEY_TEXT.test(trimmed) ? Buffer.from(trimmed, "base64") : null;
}

export function parseMasterKey(text: string): Buffer {
  const key = decodeMasterKey(text);
  if (!key) throw new VaultError("KEYWARD_MASTER_KEY must be 32 bytes, base64-encoded");
  return key;
}

const localMasterKeyPath = (dataDir: string) => join(dataDir, "master.key");

/** The embedded default's master key, `<dataDir>/master.key`, if one was created there; never creates one. */
export function readLocalMasterKey(dataDir: string): Buffer | null {
  const path = localMasterKeyPath(dataDir);
  if (!existsSync(path)) return null;
  assertPrivate(path, "the master key file");
  return parseMasterKey(readFileSync(path, "utf8"));
}

/**
 * Embedded default only: the master key lives in `<dataDir>/master.key` (mode 0600), created on first
 * start. `generated` tells the caller to warn that the key sits beside the data it protects.
 */
export function loadOrCreateLocalMasterKey(dataDir: string): { key: Buffer; generated: boolean; path: string } {
  const path = localMasterKeyPath(dataDir);
  const existing = readLocalMasterKey(dataDir);
  if (existing) return { key: existing, generated: false, path };
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(path, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return { key, generated: true, path };
}
