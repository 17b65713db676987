import { defineConfig } from "vitest/config";

// Unit tests (pure functions, no database) run on their own. Everything that stores data runs once, on
// PostgreSQL: the server DATABASE_URL names, or else an embedded one started for the run (test/setup/database.ts).
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Most test files wait on sockets, child processes and timers rather than the CPU, so more files run
    // at once than there are cores (vitest's default is one fewer than the cores).
    maxWorkers: 4,
    isolate: false,
    // In CI the JSON report gives .ci/run the real pass/fail counts.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: process.env.CI ? { json: "test-results.json" } : undefined,
    projects: [
      { extends: true as const, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        extends: true as const,
        test: { name: "postgres", include: ["test/**/*.test.ts"], exclude: ["test/unit/**"], globalSetup: ["test/setup/database.ts"] },
      },
    ],
  },
});
