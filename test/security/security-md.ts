import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCaseTable } from "./cases.js";

/**
 * SECURITY.md's case table, generated from the catalogue (test/security/cases.ts).
 * test/security/security-md.test.ts fails while the file differs; only this script rewrites it:
 * `npx tsx test/security/security-md.ts --write`.
 */
export const SECURITY_MD_PATH = fileURLToPath(new URL("../../SECURITY.md", import.meta.url));
export const REGENERATE = "npx tsx test/security/security-md.ts --write";
const BEGIN = "<!-- cases:begin -->";
const END = "<!-- cases:end -->";

/** The document with its case table replaced by the catalogue's; throws if the markers are missing. */
export function withCurrentCaseTable(doc: string): string {
  const from = doc.indexOf(BEGIN);
  const to = doc.indexOf(END);
  if (from === -1 || to < from) throw new Error(`SECURITY.md needs ${BEGIN} ... ${END}`);
  return `${doc.slice(0, from + BEGIN.length)}\n${renderCaseTable()}\n${doc.slice(to)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  writeFileSync(SECURITY_MD_PATH, withCurrentCaseTable(readFileSync(SECURITY_MD_PATH, "utf8")));
  console.log(`wrote ${SECURITY_MD_PATH}`);
}
