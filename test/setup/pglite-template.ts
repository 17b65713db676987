import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A data dir whose PGlite database has every migration applied (see newStore). */
    pgliteTemplate: string;
  }
}

/**
 * PGlite's initdb and the migrations cost ~4 s of CPU per new database, paid by almost every test file;
 * done once here, each store starts as a copy. Tests of a brand-new database ask newStore for one.
 */
export default async function setup(project: TestProject) {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-template-"));
  const db = await openDatabase({ kind: "pglite", dataDir });
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
  project.provide("pgliteTemplate", dataDir);
  return () => rmSync(dataDir, { recursive: true, force: true });
}
