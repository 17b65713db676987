// Prisma CLI configuration. Only `prisma generate` and `prisma migrate diff` are used (both offline);
// migrations are applied by the broker itself (src/db/migrate.ts), see ../README.md.
import { defineConfig } from "prisma/config";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { PGlite } from "@electric-sql/pglite";
import type { SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";

// Without a DATABASE_URL the CLI cannot read `engineType = "client"` and falls back to downloading
// a native engine, which fails offline. generate and diff never connect to it.
process.env.DATABASE_URL ??= "postgresql://placeholder@localhost:5432/placeholder";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  // Required by the JS engine; an in-memory database that generate and diff never touch.
  // (Typed against an older driver-adapter-utils; see src/db/database.ts.)
  adapter: async () => new PrismaPGlite(new PGlite()) as unknown as SqlMigrationAwareDriverAdapterFactory,
});
