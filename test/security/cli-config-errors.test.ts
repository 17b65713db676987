import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { emptyHome, runCli } from "../helpers/cli.js";
import { title } from "./cases.js";

describe(title("SEC-06"), () => {
  it("a config.json that is not valid JSON is named, without a character of what it holds", async () => {
    const adminKey = "kwa_" + "Zq8mWf3TnR0vXy7uLp2cHs9dKb4gJe1aQo6iVt5wN";
    for (const text of [
      `{"url": "http://127.0.0.1:9", "adminKey": ${adminKey}}`,
      `{"url": "http://127.0.0.1:9", "adminKey": "${adminKey}",}`,
      `{"adminKey": "${adminKey}" "url": "http://127.0.0.1:9"}`,
      `{"adminKey": '${adminKey}'}`,
    ]) {
      const home = emptyHome();
      mkdirSync(join(home, ".config", "keyward"), { recursive: true });
      writeFileSync(join(home, ".config", "keyward", "config.json"), text + "\n", { mode: 0o600 });
      const result = await runCli(["agent", "list"], { env: { HOME: home } });
      rmSync(home, { recursive: true, force: true });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/config\.json: not valid JSON/);
      for (let i = 0; i + 6 <= adminKey.length; i++) expect(result.stderr, text).not.toContain(adminKey.slice(i, i + 6));
    }
  });
});
