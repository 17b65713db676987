import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ERROR_CODES, STEPS, type Step } from "../sdk/codes.js";
import { projectPath } from "../util/project-root.js";

/**
 * docs/errors.md, generated from the catalogue (src/sdk/codes.ts). test/unit/http/error-docs.test.ts
 * fails while the file differs; regenerate it with `npx tsx src/http/error-docs.ts --write`.
 */
export function renderErrorsDoc(): string {
  const lines = [
    "# Error codes",
    "",
    "<!-- Generated from src/sdk/codes.ts by `npx tsx src/http/error-docs.ts --write`: edit the catalogue, not this file. -->",
    "",
    "Every error Keyward answers with carries one of these codes, and only these: `{ \"error\": { \"code\", \"message\", \"reason\"? , \"details\"? } }`",
    "on the API and the proxy (with a `Keyward-Error: <code>` header, so that a refusal by Keyward is never mistaken for the",
    "upstream's own answer), or RFC 6749's `{ \"error\", \"error_description\" }` on the OAuth endpoints, whose `error` is the",
    "OAuth name (which folds several of these into one, see [tokens](tokens.md#oauth-20)) and whose `Keyward-Error` header",
    "is the code here. A refused proxy call's audit event has the code in `reason` and the specifics in `details.reason`.",
    "The SDK exports the codes as the `ErrorCode` type and the table as `ERROR_CODES`. Codes are stable: new ones are",
    "added, none is renamed or reused.",
    "",
    "## Steps",
    "",
    "| step | where |",
    "|---|---|",
    ...Object.entries(STEPS).map(([step, where]) => `| \`${step}\` | ${where} |`),
    "",
    "## Codes",
    "",
  ];
  for (const step of Object.keys(STEPS) as Step[]) {
    const codes = Object.entries(ERROR_CODES).filter(([, entry]) => entry.step === step);
    if (codes.length === 0) continue;
    lines.push(`### ${step}`, "", "| code | HTTP status | meaning |", "|---|---|---|");
    for (const [code, entry] of codes) lines.push(`| \`${code}\` | ${entry.status === 0 ? "none (client side)" : entry.status} | ${entry.meaning} |`);
    lines.push("");
  }
  return lines.join("\n");
}

export const ERRORS_DOC_PATH = projectPath("docs", "errors.md");

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  writeFileSync(ERRORS_DOC_PATH, renderErrorsDoc());
  console.log(`wrote ${ERRORS_DOC_PATH}`);
}
