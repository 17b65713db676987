import { defineConfig } from "vitest/config";

// Unit tests (pure functions, no database) run on their own. Everything that stores data runs once, on
// PostgreSQL: the server DATABASE_URL names, or else an embedded one started for the run (test/setup/database.ts).
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // One file per core: many files time what they test (timeouts, health checks, recovery), and on two
    // cores four files at once measured the machine's load rather than the broker. The suite runs once
    // now (one PostgreSQL backend), so it stays well within its time.
    maxWorkers: 2,
    isolate: false,
    // In CI the JSON report gives .ci/run the real pass/fail counts.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: process.env.CI ? { json: "test-results.json" } : undefined,
    projects: [
      { extends: true as const, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        extends: true as const,
        test: { name: "postgres", include: ["test/**/*.test.ts"], exclude: ["test/unit/**"], globalSetup: ["test/setup/build.ts", "test/setup/database.ts"] },
      },
    ],
  },
});
