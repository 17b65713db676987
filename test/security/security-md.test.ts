import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { CASES } from "./cases.js";
import { REGENERATE, SECURITY_MD_PATH, withCurrentCaseTable } from "./security-md.js";

const ID = /^(?:TOK|REQ|ADM|SEC|FLT)-\d{2}\b/;
const TEST_FUNCTIONS = new Set(["it", "test", "describe", "each"]);
const NOT_RUN = new Set(["skip", "todo"]);

/**
 * The case IDs a file's tests are named after: a test, `it.each(...)` row or describe block whose title
 * is `title("REQ-01")` (one or several) or a text starting with the ID. IDs in comments, in assertion
 * messages or in the middle of another test's title do not count, nor skipped tests.
 */
function casesNamedByTests(source: string): string[] {
  const file = ts.createSourceFile("test.ts", source, ts.ScriptTarget.Latest, true);
  const ids: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && isRunningTest(node) && node.arguments.length > 0) ids.push(...idsInTitle(node.arguments[0]!));
    ts.forEachChild(node, visit);
  };
  visit(file);
  return ids;
}

/** `it(...)`, `it.each(rows)(...)`, `describe.sequential(...)`: a call with a test body, not skipped. */
function isRunningTest(call: ts.CallExpression): boolean {
  if (!call.arguments.some((arg) => ts.isArrowFunction(arg) || ts.isFunctionExpression(arg))) return false;
  let callee: ts.Expression = call.expression;
  for (;;) {
    if (ts.isPropertyAccessExpression(callee)) {
      if (NOT_RUN.has(callee.name.text)) return false;
      callee = callee.expression;
    } else if (ts.isCallExpression(callee)) callee = callee.expression;
    else return ts.isIdentifier(callee) && TEST_FUNCTIONS.has(callee.text);
  }
}

function idsInTitle(title: ts.Node): string[] {
  const leading = ts.isStringLiteral(title) || ts.isNoSubstitutionTemplateLiteral(title) ? title.text : ts.isTemplateExpression(title) ? title.head.text : "";
  const ids = ID.exec(leading) ? [ID.exec(leading)![0]] : [];
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === "title" && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) ids.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(title);
  return ids;
}

/**
 * SECURITY.md cannot drift from what the suite checks: its case table is generated from the catalogue
 * the tests take their expected results from, and every catalogued case must be exercised by a test.
 */
describe("SECURITY.md", () => {
  it("its case table is the one test/security/cases.ts generates", () => {
    const doc = readFileSync(SECURITY_MD_PATH, "utf8");
    expect(withCurrentCaseTable(doc) === doc, `SECURITY.md is out of date; regenerate it with: ${REGENERATE}`).toBe(true);
  });

  it("every case in the catalogue is exercised by a test named after it, and tests name no other case", () => {
    const used = new Set<string>();
    // The property-based test of decide() (REQ-30) is a unit test: pure, no broker.
    for (const dir of ["test/security", "test/faults", "test/unit/policy"]) {
      for (const file of readdirSync(join(process.cwd(), dir)).filter((f) => f.endsWith(".test.ts") && f !== "security-md.test.ts")) {
        for (const id of casesNamedByTests(readFileSync(join(process.cwd(), dir, file), "utf8"))) used.add(id);
      }
    }
    expect([...used].sort()).toEqual(Object.keys(CASES).sort());
  });

  it("counts a case only when a running test is named after it", () => {
    const source = `
      // REQ-01 is only mentioned in this comment
      it(title("TOK-01"), () => {});
      it.each(["a"])(title("TOK-02"), () => {});
      it(\`\${title("FLT-01")}; \${title("FLT-02")}\`, { timeout: 1 }, async () => {});
      it("REQ-28: granting paths stay exact (see SEC-01)", () => { expect(1, "ADM-01 message").toBe(1); });
      describe("REQ-30 properties", () => {});
      it.skip(title("TOK-03"), () => {});
      const text = "REQ-02";
    `;
    expect(casesNamedByTests(source).sort()).toEqual(["FLT-01", "FLT-02", "REQ-28", "REQ-30", "TOK-01", "TOK-02"]);
  });
});
