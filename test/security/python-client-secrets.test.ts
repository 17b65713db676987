import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { title } from "./cases.js";

const PYTHON_CLIENT = fileURLToPath(new URL("../../clients/python", import.meta.url));

describe(title("SEC-07"), () => {
  it("repr() and str() of a Token name its expiry and scope, not the access token", () => {
    const accessToken = "eyJhbGciOiJFUzI1NiJ9.Zq8mWf3TnR0vXy7uLp2cHs9dKb4gJe1aQo6iVt5wN";
    const printed = execFileSync(
      "python3",
      ["-c", "import sys; from keyward import Token; t = Token(sys.argv[1], 1.5, 'hosting:GET'); print(repr(t)); print(str(t)); print(repr([t]))", accessToken],
      { cwd: PYTHON_CLIENT, encoding: "utf8" },
    );
    expect(printed).toContain("hosting:GET");
    for (let i = 0; i + 6 <= accessToken.length; i++) expect(printed).not.toContain(accessToken.slice(i, i + 6));
  });
});
