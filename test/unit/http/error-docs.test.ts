import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERRORS_DOC_PATH, renderErrorsDoc } from "../../../src/http/error-docs.js";
import { ERROR_CODES, STEPS } from "../../../src/sdk/codes.js";

describe("docs/errors.md", () => {
  // Fails, never rewrites: a file a test regenerates silently is a file nobody reviews.
  it("is the table the catalogue generates", () => {
    const onDisk = readFileSync(ERRORS_DOC_PATH, "utf8");
    expect(onDisk, "docs/errors.md is out of date: run npx tsx src/http/error-docs.ts --write").toBe(renderErrorsDoc());
  });

  it("lists every code of the catalogue, each once", () => {
    const doc = renderErrorsDoc();
    for (const code of Object.keys(ERROR_CODES)) {
      expect(doc.match(new RegExp(`^\\| \`${code}\` \\|`, "gm")), code).toHaveLength(1);
    }
  });
});

describe("the error catalogue", () => {
  it("has snake_case codes, known steps, error statuses and one-line meanings", () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[a-z]+(?:_[a-z]+)*$/);
      expect(Object.keys(STEPS)).toContain(entry.step);
      if (entry.step === "sdk") expect([0, 403]).toContain(entry.status);
      else expect(entry.status >= 400 && entry.status <= 599, code).toBe(true);
      expect(entry.meaning).not.toMatch(/[\n|]/);
      // Plain ASCII: error texts are read in terminals, logs and OAuth error_description.
      expect(entry.meaning).toMatch(/^[\x20-\x7e]+$/);
    }
  });

  it("names the refusals decide() returns with the names agents code against", () => {
    const decideCodes = Object.entries(ERROR_CODES).filter(([, e]) => e.step === "decide").map(([code]) => code);
    expect(decideCodes).toEqual(
      expect.arrayContaining(["method_not_granted", "path_not_granted", "deny_rule", "operation_denied", "protected_operation", "environment_not_granted"]),
    );
    expect(ERROR_CODES.budget_exceeded).toMatchObject({ status: 429, step: "budget" });
  });
});
