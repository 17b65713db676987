// Prisma CLI configuration. Only `prisma generate` and `prisma migrate diff` are used (both offline);
// migrations are applied by the broker itself (src/db/migrate.ts), see docs.
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

// Without a DATABASE_URL the CLI cannot read `engineType = "client"` and falls back to downloading
// a native engine, which fails offline. generate and diff never connect to it.
process.env.DATABASE_URL ??= "postgresql://placeholder@localhost:5432/placeholder";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  // Required by the JS engine; generate and diff never open a connection through it.
  adapter: async () => new PrismaPg({ connectionString: process.env.DATABASE_URL }),
});
