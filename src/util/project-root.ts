import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The project's directory (package.json, prisma/migrations, console/dist, docs): the first directory
 * above this module that holds a package.json. Found rather than written as `../..`, because the module
 * runs from src/util as TypeScript (tests, tsx) and from build/src/util compiled (`npm start`, the image).
 */
const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json in ${from} or above it`);
  }
}

/** A path inside the project's directory. */
export const projectPath = (...parts: string[]): string => join(PROJECT_ROOT, ...parts);
