// `keyward rotate-master-key` (and `npm run rotate-master-key`): re-encrypts every stored secret under
// KEYWARD_MASTER_KEY, reading what is still under KEYWARD_MASTER_KEY_PREVIOUS. Safe to interrupt and to
// run again (src/vault/reencrypt.ts).
import { ConfigError, loadConfig } from "../config/config.js";
import { databaseOptionsOf, openDatabase } from "../db/database.js";
import { migrate } from "../db/migrate.js";
import { assertKeywardDatabase } from "./commands/database.js";
import { deriveCheckpointKey } from "../audit/chain.js";
import { reanchorCheckpoint } from "../audit/retention.js";
import { reencryptSecrets, type ReencryptResult } from "../vault/reencrypt.js";
import { parseMasterKey, Vault } from "../vault/vault.js";

/** What a rotation did: `unreadable` names the rows neither key decrypts (counted in `remaining`). */
export type RotationResult = ReencryptResult & { unreadable: string[] };

export async function rotateMasterKey(): Promise<RotationResult> {
  const config = loadConfig();
  if (!config.masterKey || !config.masterKeyPrevious) {
    throw new ConfigError("set KEYWARD_MASTER_KEY to the new key and KEYWARD_MASTER_KEY_PREVIOUS to the old one");
  }
  const [current, previous] = [parseMasterKey(config.masterKey), parseMasterKey(config.masterKeyPrevious)];
  if (current.equals(previous)) {
    throw new ConfigError("KEYWARD_MASTER_KEY and KEYWARD_MASTER_KEY_PREVIOUS are the same key: set KEYWARD_MASTER_KEY to the new one");
  }
  const vault = new Vault(current, previous);
  const where = databaseOptionsOf(config);
  // A rotation of a new, empty database would report success for a data dir that is not the broker's.
  const db = await openDatabase(where.kind === "embedded" ? { ...where, mustExist: true } : where);
  try {
    await assertKeywardDatabase(db);
    await migrate(db);
    const unreadable: string[] = [];
    const result = await reencryptSecrets(db.prisma, vault, { actor: "cli:rotate-master-key", onUnreadable: (what) => unreadable.push(what) });
    // The newest audit checkpoint too, if it is still signed under the previous key only (a broker started
    // with both keys does this, but none may have): once this succeeds, nothing needs the previous key.
    await reanchorCheckpoint(db.prisma, [deriveCheckpointKey(current), deriveCheckpointKey(previous)], "cli:rotate-master-key");
    return { ...result, unreadable };
  } finally {
    await db.close();
  }
}
