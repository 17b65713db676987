import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedServer } from "../../src/db/embedded.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The PostgreSQL database the tests' stores are schemas of (see newStore). */
    testDatabaseUrl: string;
  }
}

/**
 * The suite runs on PostgreSQL: the one DATABASE_URL names (CI: the machine's own server), or else one
 * embedded server, as `npm start` runs it, started once for the whole run. Every store is a fresh schema
 * in it; tests of the embedded default itself start servers of their own.
 */
export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    project.provide("testDatabaseUrl", process.env.DATABASE_URL);
    return;
  }
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-testdb-"));
  const server = await startEmbeddedServer({ dataDir, maxConnections: 400 });
  project.provide("testDatabaseUrl", server.url);
  return async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
