import type { FastifyInstance } from "fastify";
import type { DestinationStream } from "pino";
import { bootstrapAdminKey } from "./admin/keys.js";
import { Agents } from "./agents/agents.js";
import type { Config } from "./config/config.js";
import { openDatabase, type Database } from "./db/database.js";
import { migrate } from "./db/migrate.js";
import { Grants } from "./grants/grants.js";
import { createUpstreamDispatcher } from "./proxy/forward.js";
import { RevocationService } from "./revocation/service.js";
import { buildServer } from "./server.js";
import { loadKeySet } from "./tokens/signing-keys.js";
import { Tokens } from "./tokens/tokens.js";
import { Upstreams } from "./upstreams/upstreams.js";
import { loadOrCreateLocalMasterKey, parseMasterKey, Vault } from "./vault/vault.js";

export type Keyward = {
  app: FastifyInstance;
  db: Database;
  /** Set only on the first start of an empty database without KEYWARD_ADMIN_KEY: show it once. */
  generatedAdminKey: string | null;
  /** Where a generated master key was written, to warn about it. */
  generatedMasterKeyPath: string | null;
  close(): Promise<void>;
};

export type KeywardOptions = {
  logStream?: DestinationStream;
  /** For tests: run on an in-memory PGlite instead of the data dir. */
  inMemory?: boolean;
};

/** Opens the database, migrates it, loads keys and revocation state, and builds the server. */
export async function createKeyward(config: Config, options: KeywardOptions = {}): Promise<Keyward> {
  let generatedMasterKeyPath: string | null = null;
  let masterKey: Buffer;
  if (config.masterKey) {
    masterKey = parseMasterKey(config.masterKey);
  } else {
    const local = loadOrCreateLocalMasterKey(config.dataDir);
    masterKey = local.key;
    if (local.generated) generatedMasterKeyPath = local.path;
  }
  const vault = new Vault(masterKey);

  const db = await openDatabase(
    config.databaseUrl
      ? { kind: "postgres", url: config.databaseUrl }
      : { kind: "pglite", dataDir: options.inMemory ? undefined : config.dataDir },
  );
  try {
    await migrate(db);
    const { prisma } = db;
    const generatedAdminKey = await bootstrapAdminKey(prisma, config.bootstrapAdminKey);
    const keySet = await loadKeySet(prisma, vault);
    const keys = () => keySet;

    const revocations = new RevocationService(prisma, {
      resyncMs: config.revocationResyncMs,
      maxStalenessMs: config.revocationMaxStalenessMs,
    });
    await revocations.sync();

    const claims = { issuer: config.issuer, audience: config.audience };
    const grants = new Grants(prisma, revocations);
    const agents = new Agents(prisma, revocations);
    const upstreams = new Upstreams(prisma, vault);
    const tokens = new Tokens(prisma, grants, keys, claims);
    const dispatcher = createUpstreamDispatcher(config.upstreamTimeoutMs);

    const app = await buildServer(
      config,
      { prisma, upstreams, agents, grants, revocations, tokens, keys, dispatcher, claims, maxBodyBytes: config.proxyMaxBodyBytes },
      options.logStream,
    );
    revocations.start((err) => app.log.warn({ err }, "revocation resync failed"));

    return {
      app,
      db,
      generatedAdminKey,
      generatedMasterKeyPath,
      async close() {
        revocations.stop();
        await app.close();
        await dispatcher.close();
        await db.close();
      },
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}
