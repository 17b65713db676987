import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { AddressInfo } from "node:net";
import pg from "pg";
import request from "supertest";
import { inject } from "vitest";
import { loadConfig, type Config } from "../../src/config/config.js";
import { createKeyward, type Keyward } from "../../src/keyward.js";

/**
 * Where a test broker keeps its data: a fresh schema in the test run's PostgreSQL (test/setup/database.ts)
 * and a data dir. Reusing one across two brokers is how tests restart a broker "on the same data", or run
 * two replicas on one database.
 */
export type Store = { dataDir: string; databaseUrl: string; masterKey: string; drop(): Promise<void> };

export function newStore(): Store {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-test-"));
  const masterKey = randomBytes(32).toString("base64");
  const base = inject("testDatabaseUrl");
  const schema = `kw_test_${randomBytes(6).toString("hex")}`;
  const url = new URL(base);
  url.searchParams.set("schema", schema);
  return {
    dataDir,
    masterKey,
    databaseUrl: url.toString(),
    async drop() {
      rmSync(dataDir, { recursive: true, force: true });
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

export type TestBroker = {
  url: string;
  keyward: Keyward;
  config: Config;
  adminKey: string;
  /** Every log line the broker wrote. */
  logs: string[];
  /** supertest bound to the broker over real HTTP. */
  http: () => ReturnType<typeof request>;
  admin: (method: "get" | "post" | "patch" | "put" | "delete", path: string, body?: unknown) => Promise<request.Response>;
  close(): Promise<void>;
};

export const TEST_ADMIN_KEY = "kwa_test_" + "a".repeat(40);

export async function startBroker(store: Store, env: Record<string, string> = {}): Promise<TestBroker> {
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, done) {
      logs.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    KEYWARD_DATA_DIR: store.dataDir,
    KEYWARD_MASTER_KEY: store.masterKey,
    KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY,
    KEYWARD_ISSUER: "http://keyward.test",
    LOG_LEVEL: "info",
    DATABASE_URL: store.databaseUrl,
    ...env,
  });
  const keyward = await createKeyward(config, { logStream });
  await keyward.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = keyward.app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const http = () => request(url);
  return {
    url,
    keyward,
    config,
    adminKey: TEST_ADMIN_KEY,
    logs,
    http,
    admin: (method, path, body) => {
      const req = http()[method](path).set("authorization", `Bearer ${TEST_ADMIN_KEY}`);
      return body === undefined ? req : req.send(body as object);
    },
    close: () => keyward.close(),
  };
}
