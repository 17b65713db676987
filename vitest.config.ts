import { defineConfig } from "vitest/config";

// Unit tests (pure functions, no database) run once. Everything that stores data runs on the embedded
// PGlite, and again on real PostgreSQL when DATABASE_URL is set.
const backends = process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

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
      ...backends.map((backend) => ({
        extends: true as const,
        test: {
          name: backend,
          include: ["test/**/*.test.ts"],
          exclude: ["test/unit/**"],
          env: { KEYWARD_TEST_BACKEND: backend },
          globalSetup: backend === "pglite" ? ["test/setup/pglite-template.ts"] : [],
        },
      })),
    ],
  },
});
