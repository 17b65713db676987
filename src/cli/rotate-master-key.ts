// `npm run rotate-master-key`: re-encrypts every stored secret under KEYWARD_MASTER_KEY, reading what is
// still under KEYWARD_MASTER_KEY_PREVIOUS. Safe to interrupt and to run again (src/vault/reencrypt.ts).
import { ConfigError, loadConfig } from "../config/config.js";
import { databaseOptionsOf, openDatabase } from "../db/database.js";
import { migrate } from "../db/migrate.js";
import { deriveCheckpointKey } from "../audit/chain.js";
import { reanchorCheckpoint } from "../audit/retention.js";
import { reencryptSecrets } from "../vault/reencrypt.js";
import { parseMasterKey, Vault } from "../vault/vault.js";

async function main(): Promise<number> {
  const config = loadConfig();
  if (!config.masterKey || !config.masterKeyPrevious) {
    throw new ConfigError("set KEYWARD_MASTER_KEY to the new key and KEYWARD_MASTER_KEY_PREVIOUS to the old one");
  }
  const [current, previous] = [parseMasterKey(config.masterKey), parseMasterKey(config.masterKeyPrevious)];
  if (current.equals(previous)) {
    throw new ConfigError("KEYWARD_MASTER_KEY and KEYWARD_MASTER_KEY_PREVIOUS are the same key: set KEYWARD_MASTER_KEY to the new one");
  }
  const vault = new Vault(current, previous);
  const db = await openDatabase(databaseOptionsOf(config));
  try {
    await migrate(db);
    const result = await reencryptSecrets(db.prisma, vault, {
      actor: "cli:rotate-master-key",
      onUnreadable: (what) => process.stderr.write(`rotate-master-key: ${what}\n`),
    });
    // The newest audit checkpoint too, if it is still signed under the previous key only (a broker started
    // with both keys does this, but none may have): once this exits 0, nothing needs the previous key.
    await reanchorCheckpoint(db.prisma, [deriveCheckpointKey(current), deriveCheckpointKey(previous)], "cli:rotate-master-key");
    process.stdout.write(`re-encrypted ${result.reencrypted} secret(s); ${result.remaining} still under another key\n`);
    return result.remaining === 0 ? 0 : 1;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`rotate-master-key: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
