import { createHmac, randomBytes, timingSafeEqual, type Hmac } from "node:crypto";
import { OtherMasterKey, VaultError, type Vault } from "../vault/vault.js";
import { RestoreRefused } from "./restore-refused.js";

const SEAL_CONTEXT = "keyward-backup-seal";

export const WHICH_MASTER_KEY =
  "set KEYWARD_MASTER_KEY to the master key of the broker it was taken from (and KEYWARD_MASTER_KEY_PREVIOUS to the other during a rotation), or copy its master.key into the data dir";

/**
 * What makes a backup's rows trustworthy beyond its audit chain: an HMAC-SHA256 over every line before
 * the last, under a random key of its own that the master key encrypts into the header. Whoever can
 * edit the file but does not hold the master key cannot drop a revocation, widen a grant or fix the
 * row counts to match without the seal failing; restore already needs the master key for the secrets.
 */
export class BackupSeal {
  readonly #mac: Hmac;

  private constructor(
    /** The seal's key, encrypted under the master key: the header carries it. */
    readonly sealedKey: string,
    key: Buffer,
  ) {
    this.#mac = createHmac("sha256", key);
  }

  static create(vault: Vault): BackupSeal {
    const key = randomBytes(32);
    return new BackupSeal(vault.encrypt(key.toString("base64"), SEAL_CONTEXT), key);
  }

  /** The seal of a backup being restored, from its header's `seal`: refused unless the master key opens it. */
  static open(vault: Vault | null, sealedKey: unknown): BackupSeal {
    if (typeof sealedKey !== "string") throw new RestoreRefused("not a Keyward backup (its header has no seal)");
    if (!vault) throw new RestoreRefused(`the backup is sealed under a master key, and none is given: ${WHICH_MASTER_KEY}`);
    try {
      return new BackupSeal(sealedKey, Buffer.from(vault.decrypt(sealedKey, SEAL_CONTEXT), "base64"));
    } catch (err) {
      if (err instanceof OtherMasterKey) throw new RestoreRefused(`the backup is sealed under another master key: ${WHICH_MASTER_KEY}`);
      if (!(err instanceof VaultError)) throw err;
      throw new RestoreRefused("the backup's seal does not open under the master key: the backup was altered, or its key is another");
    }
  }

  /** Adds one line as written (without its newline; the seal counts one after each). */
  add(line: string): void {
    this.#mac.update(line, "utf8").update("\n");
  }

  /** The seal line's value, once every line before it was added. */
  digest(): string {
    return this.#mac.digest("hex");
  }

  matches(written: unknown): boolean {
    const expected = Buffer.from(this.digest(), "hex");
    return typeof written === "string" && /^[0-9a-f]{64}$/.test(written) && timingSafeEqual(Buffer.from(written, "hex"), expected);
  }
}
