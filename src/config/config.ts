import { z } from "zod";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default("127.0.0.1"),
  KEYWARD_DATA_DIR: z.string().min(1).default("./.keyward"),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  KEYWARD_MASTER_KEY: z.string().optional(),
  KEYWARD_ADMIN_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  KEYWARD_ISSUER: z.string().url().optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  KEYWARD_UPSTREAM_TIMEOUT_MS: positiveInt(30_000),
  KEYWARD_PROXY_MAX_BODY_BYTES: positiveInt(10 * 1024 * 1024),
  KEYWARD_REVOCATION_RESYNC_MS: positiveInt(2_000),
  KEYWARD_REVOCATION_MAX_STALENESS_MS: positiveInt(5_000),
});

export type Config = {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** base64 of 32 bytes, or undefined to generate one in the data dir (embedded database only). */
  masterKey: string | undefined;
  bootstrapAdminKey: string | undefined;
  issuer: string;
  audience: "keyward";
  logLevel: (typeof LOG_LEVELS)[number];
  upstreamTimeoutMs: number;
  proxyMaxBodyBytes: number;
  adminMaxBodyBytes: number;
  revocationResyncMs: number;
  revocationMaxStalenessMs: number;
};

export class ConfigError extends Error {}

/** Parses the environment once; throws ConfigError with every problem listed. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  const e = parsed.data;
  if (e.DATABASE_URL && !e.KEYWARD_MASTER_KEY) {
    throw new ConfigError(
      "invalid configuration:\n  KEYWARD_MASTER_KEY: required when DATABASE_URL is set " +
        "(a generated key may only live beside the embedded database)",
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.KEYWARD_DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    masterKey: e.KEYWARD_MASTER_KEY,
    bootstrapAdminKey: e.KEYWARD_ADMIN_KEY,
    issuer: e.KEYWARD_ISSUER ?? `http://${e.HOST}:${e.PORT}`,
    audience: "keyward",
    logLevel: e.LOG_LEVEL,
    upstreamTimeoutMs: e.KEYWARD_UPSTREAM_TIMEOUT_MS,
    proxyMaxBodyBytes: e.KEYWARD_PROXY_MAX_BODY_BYTES,
    adminMaxBodyBytes: 64 * 1024,
    revocationResyncMs: e.KEYWARD_REVOCATION_RESYNC_MS,
    revocationMaxStalenessMs: e.KEYWARD_REVOCATION_MAX_STALENESS_MS,
  };
}
