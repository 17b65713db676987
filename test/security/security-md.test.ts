import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CASES, renderCaseTable } from "./cases.js";

const DOC = join(process.cwd(), "SECURITY.md");
const BEGIN = "<!-- cases:begin -->";
const END = "<!-- cases:end -->";
const UPDATE = "KEYWARD_UPDATE_SECURITY_MD=1 npx vitest run test/security/security-md.test.ts";
const ID = /\b(?:TOK|REQ|ADM|SEC|FLT)-\d{2}\b/g;

/**
 * SECURITY.md cannot drift from what the suite checks: its case table is generated from the catalogue
 * the tests take their expected results from, and every catalogued case must be exercised by a test.
 */
describe("SECURITY.md", () => {
  it("its case table is the one test/security/cases.ts generates", () => {
    const doc = readFileSync(DOC, "utf8");
    const from = doc.indexOf(BEGIN);
    const to = doc.indexOf(END);
    expect(from, `SECURITY.md needs ${BEGIN} ... ${END}`).toBeGreaterThan(-1);
    expect(to).toBeGreaterThan(from);
    const current = doc.slice(from + BEGIN.length, to).trim();
    const expected = renderCaseTable();
    if (current !== expected && process.env.KEYWARD_UPDATE_SECURITY_MD === "1") {
      writeFileSync(DOC, `${doc.slice(0, from + BEGIN.length)}\n${expected}\n${doc.slice(to)}`);
      return;
    }
    expect(current, `SECURITY.md is out of date; regenerate it with: ${UPDATE}`).toBe(expected);
  });

  it("every case in the catalogue is exercised by a test, and tests name no other case", () => {
    const used = new Set<string>();
    // The property-based test of decide() (REQ-30) is a unit test: pure, no broker.
    for (const dir of ["test/security", "test/faults", "test/unit/policy"]) {
      for (const file of readdirSync(join(process.cwd(), dir)).filter((f) => f.endsWith(".test.ts") && f !== "security-md.test.ts")) {
        for (const id of readFileSync(join(process.cwd(), dir, file), "utf8").match(ID) ?? []) used.add(id);
      }
    }
    expect([...used].sort()).toEqual(Object.keys(CASES).sort());
  });
});
