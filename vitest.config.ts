import { defineConfig } from "vitest/config";

// The whole suite runs on the embedded PGlite, and again on real PostgreSQL when DATABASE_URL is set.
const backends = process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // In CI the JSON report gives .ci/run the real pass/fail counts.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: process.env.CI ? { json: "test-results.json" } : undefined,
    projects: backends.map((backend) => ({
      extends: true,
      test: { name: backend, include: ["test/**/*.test.ts"], env: { KEYWARD_TEST_BACKEND: backend } },
    })),
  },
});
