import { readFileSync } from "node:fs";
import { z } from "zod";
import type { UpstreamTimeouts } from "../proxy/upstream-timeouts.js";
import type { ApprovalWebhookTarget } from "../approvals/webhook.js";
import { MAX_TOKEN_TTL_SECONDS } from "../tokens/claims.js";
import { decodeMasterKey } from "../vault/vault.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const intBetween = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

// Checked here, not first when the vault opens, so a bad key fails with the other configuration errors.
// The message never repeats the value: it is the key, or close to it.
const masterKey = z.string().refine((text) => decodeMasterKey(text) !== null, "must be 32 bytes, base64-encoded");

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default("127.0.0.1"),
  KEYWARD_DATA_DIR: z.string().min(1).default("./.keyward"),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    // Checked here, so every command says so in one line, without the URL (its password) or a stack trace.
    .refine((url) => URL.canParse(url), "is not a valid URL")
    .optional(),
  KEYWARD_MASTER_KEY: masterKey.optional(),
  KEYWARD_MASTER_KEY_PREVIOUS: masterKey.optional(),
  KEYWARD_ADMIN_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  KEYWARD_ISSUER: z.string().url().optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  KEYWARD_UPSTREAM_TIMEOUT_MS: positiveInt(30_000),
  KEYWARD_UPSTREAM_CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().optional(),
  KEYWARD_UPSTREAM_HEADERS_TIMEOUT_MS: z.coerce.number().int().positive().optional(),
  KEYWARD_UPSTREAM_BODY_IDLE_TIMEOUT_MS: z.coerce.number().int().positive().optional(),
  KEYWARD_REQUEST_TIMEOUT_MS: positiveInt(120_000),
  KEYWARD_HEADERS_TIMEOUT_MS: z.coerce.number().int().positive().optional(),
  KEYWARD_SHUTDOWN_TIMEOUT_MS: positiveInt(25_000),
  KEYWARD_PROXY_MAX_BODY_BYTES: positiveInt(10 * 1024 * 1024),
  KEYWARD_REVOCATION_RESYNC_MS: positiveInt(2_000),
  KEYWARD_REVOCATION_MAX_STALENESS_MS: positiveInt(5_000),
  KEYWARD_AUDIT_RETENTION_DAYS: z.coerce.number().int().positive().optional(),
  KEYWARD_AUDIT_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  KEYWARD_AUDIT_WEBHOOK_AUTHORIZATION: z.string().min(1).optional(),
  KEYWARD_LOG_PROXY_CALLS: z.enum(["on", "off"]).default("off"),
  KEYWARD_LOG_TOKEN_ISSUANCE: z.enum(["on", "off"]).default("off"),
  KEYWARD_TOKEN_DEFAULT_TTL_SECONDS: intBetween(1, MAX_TOKEN_TTL_SECONDS, 900),
  KEYWARD_TOKEN_MAX_TTL_SECONDS: intBetween(1, MAX_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS),
  KEYWARD_CLOCK_SKEW_SECONDS: intBetween(0, 60, 5),
  KEYWARD_SIGNING_KEY_ROTATE_DAYS: intBetween(1, 365, 30),
  KEYWARD_SIGNING_KEY_RELOAD_MS: intBetween(100, 3_600_000, 60_000),
  KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS: intBetween(0, 30 * 86_400, 86_400),
  KEYWARD_POLICY_MAX_INSPECT_BYTES: positiveInt(1024 * 1024),
  KEYWARD_APPROVAL_TTL_SECONDS: intBetween(60, 7 * 86_400, 3_600),
  KEYWARD_APPROVAL_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  KEYWARD_APPROVAL_WEBHOOK_AUTHORIZATION: z.string().min(1).optional(),
  KEYWARD_FORWARD_PROXY_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  KEYWARD_FORWARD_PROXY_HOST: z.string().min(1).optional(),
});

export type Config = {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** base64 of 32 bytes, or undefined to generate one in the data dir (embedded database only). */
  masterKey: string | undefined;
  /** The master key being rotated away from: still decrypts, never encrypts (docs/secrets.md). */
  masterKeyPrevious: string | undefined;
  bootstrapAdminKey: string | undefined;
  /**
   * KEYWARD_ISSUER, else this broker's own http://HOST:PORT: the issuer it records as the deployment's if it
   * is the first to start; every replica then uses the recorded one (src/tokens/deployment-issuer.ts).
   */
  issuer: string;
  /** Whether KEYWARD_ISSUER set `issuer`: a configured issuer that disagrees with the deployment's refuses to start. */
  issuerConfigured: boolean;
  audience: "keyward";
  logLevel: (typeof LOG_LEVELS)[number];
  /** Connect, response-headers and body-idle timeouts of upstream calls (→ 504); each defaults to KEYWARD_UPSTREAM_TIMEOUT_MS. */
  upstreamTimeouts: UpstreamTimeouts;
  /** Longest a client may take to send a whole request, headers and body (→ 408). */
  requestTimeoutMs: number;
  /** Longest a client may take to send the request line and headers (→ 408); at most requestTimeoutMs. */
  headersTimeoutMs: number;
  /**
   * On SIGTERM, how long calls in flight may take to finish; those still running then are cut (their
   * outcome recorded as incomplete). Under the supervisor's own grace (Compose here: 30 s; Kubernetes' default: 30 s).
   */
  shutdownTimeoutMs: number;
  proxyMaxBodyBytes: number;
  adminMaxBodyBytes: number;
  revocationResyncMs: number;
  revocationMaxStalenessMs: number;
  /** Audit events older than this many days are pruned behind a signed checkpoint; undefined keeps them all. */
  auditRetentionDays: number | undefined;
  /** Where every audit event is forwarded (JSON Lines over POST), if anywhere. */
  auditWebhook: { url: string; authorization: string | undefined } | undefined;
  /**
   * A log line for every proxied call as well as its audit events, which are already its access record;
   * every other request is logged either way.
   */
  logProxyCalls: boolean;
  /**
   * A log line for every token issued as well as its token.issued audit event, which is already its
   * record; refusals and everything else are logged either way.
   */
  logTokenIssuance: boolean;
  tokens: TokenPolicy;
  signingKeys: { rotateAfterMs: number; reloadMs: number };
  clientSecretOverlapSeconds: number;
  /** Largest body read whole to inspect its operations (GraphQL, JSON-RPC, AWS actions); larger → 413. */
  policyInspectMaxBytes: number;
  /** How long a held token request waits for a decision and collection; where new ones are announced. */
  approvals: { ttlSeconds: number; webhook: ApprovalWebhookTarget | undefined };
  /** Transparent mode's forward proxy listener (src/forward-proxy); undefined: off. */
  forwardProxy: { port: number; host: string } | undefined;
};

export type TokenPolicy = {
  /** Lifetime of a token whose request names none (still capped by the grant and the ceiling). */
  defaultTtlSeconds: number;
  /** Global ceiling on any token's lifetime, below every grant's maxTtlSeconds. */
  maxTtlSeconds: number;
  /** Clock-skew leeway on exp, nbf and iat, for tokens and client assertions alike. */
  leewaySeconds: number;
};

export class ConfigError extends Error {}

/**
 * Secrets that may instead be read from a file named by `<NAME>_FILE` (Docker and Kubernetes secrets):
 * the database URL holds its password.
 */
export const SECRET_FILE_VARIABLES = ["DATABASE_URL", "KEYWARD_MASTER_KEY", "KEYWARD_MASTER_KEY_PREVIOUS", "KEYWARD_ADMIN_KEY"] as const;

function withSecretFiles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const resolved = { ...env };
  for (const name of SECRET_FILE_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined) continue;
    if (env[name] !== undefined) throw new ConfigError(`invalid configuration:\n  ${name}_FILE: set ${name} or ${name}_FILE, not both`);
    try {
      resolved[name] = readFileSync(file, "utf8").trim();
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return resolved;
}

function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return parsed.data;
}

const databaseSchema = envSchema.pick({
  KEYWARD_DATA_DIR: true,
  DATABASE_URL: true,
});

/** Where the database is: for commands that work on the database alone (migrate, backup, restore). */
export function loadDatabaseConfig(env: NodeJS.ProcessEnv = process.env): Pick<Config, "dataDir" | "databaseUrl"> {
  const e = parseEnv(databaseSchema, withSecretFiles(env));
  return { dataDir: e.KEYWARD_DATA_DIR, databaseUrl: e.DATABASE_URL };
}

const masterKeySchema = envSchema.pick({
  KEYWARD_DATA_DIR: true,
  DATABASE_URL: true,
  KEYWARD_MASTER_KEY: true,
  KEYWARD_MASTER_KEY_PREVIOUS: true,
});

/** Where the database is, and the master key(s): what a backup is sealed under and a restore checks the backup against. */
export function loadMasterKeyConfig(
  env: NodeJS.ProcessEnv = process.env,
): Pick<Config, "dataDir" | "databaseUrl" | "masterKey" | "masterKeyPrevious"> {
  const e = parseEnv(masterKeySchema, withSecretFiles(env));
  return { dataDir: e.KEYWARD_DATA_DIR, databaseUrl: e.DATABASE_URL, masterKey: e.KEYWARD_MASTER_KEY, masterKeyPrevious: e.KEYWARD_MASTER_KEY_PREVIOUS };
}

/** Parses the environment once; throws ConfigError with every problem listed. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(envSchema, withSecretFiles(env));
  if (e.DATABASE_URL && !e.KEYWARD_MASTER_KEY) {
    throw new ConfigError(
      "invalid configuration:\n  KEYWARD_MASTER_KEY: required when DATABASE_URL is set " +
        "(a generated key may only live beside the embedded database)",
    );
  }
  if (e.KEYWARD_TOKEN_DEFAULT_TTL_SECONDS > e.KEYWARD_TOKEN_MAX_TTL_SECONDS) {
    throw new ConfigError(
      "invalid configuration:\n  KEYWARD_TOKEN_DEFAULT_TTL_SECONDS: must not exceed KEYWARD_TOKEN_MAX_TTL_SECONDS",
    );
  }
  const headersTimeoutMs = e.KEYWARD_HEADERS_TIMEOUT_MS ?? Math.min(30_000, e.KEYWARD_REQUEST_TIMEOUT_MS);
  if (headersTimeoutMs > e.KEYWARD_REQUEST_TIMEOUT_MS) {
    throw new ConfigError("invalid configuration:\n  KEYWARD_HEADERS_TIMEOUT_MS: must not exceed KEYWARD_REQUEST_TIMEOUT_MS");
  }
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.KEYWARD_DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    masterKey: e.KEYWARD_MASTER_KEY,
    masterKeyPrevious: e.KEYWARD_MASTER_KEY_PREVIOUS,
    bootstrapAdminKey: e.KEYWARD_ADMIN_KEY,
    issuer: e.KEYWARD_ISSUER ?? `http://${e.HOST}:${e.PORT}`,
    issuerConfigured: e.KEYWARD_ISSUER !== undefined,
    audience: "keyward",
    logLevel: e.LOG_LEVEL,
    upstreamTimeouts: {
      connectMs: e.KEYWARD_UPSTREAM_CONNECT_TIMEOUT_MS ?? e.KEYWARD_UPSTREAM_TIMEOUT_MS,
      headersMs: e.KEYWARD_UPSTREAM_HEADERS_TIMEOUT_MS ?? e.KEYWARD_UPSTREAM_TIMEOUT_MS,
      bodyIdleMs: e.KEYWARD_UPSTREAM_BODY_IDLE_TIMEOUT_MS ?? e.KEYWARD_UPSTREAM_TIMEOUT_MS,
    },
    requestTimeoutMs: e.KEYWARD_REQUEST_TIMEOUT_MS,
    headersTimeoutMs,
    shutdownTimeoutMs: e.KEYWARD_SHUTDOWN_TIMEOUT_MS,
    proxyMaxBodyBytes: e.KEYWARD_PROXY_MAX_BODY_BYTES,
    adminMaxBodyBytes: 64 * 1024,
    revocationResyncMs: e.KEYWARD_REVOCATION_RESYNC_MS,
    revocationMaxStalenessMs: e.KEYWARD_REVOCATION_MAX_STALENESS_MS,
    auditRetentionDays: e.KEYWARD_AUDIT_RETENTION_DAYS,
    auditWebhook: e.KEYWARD_AUDIT_WEBHOOK_URL
      ? { url: e.KEYWARD_AUDIT_WEBHOOK_URL, authorization: e.KEYWARD_AUDIT_WEBHOOK_AUTHORIZATION }
      : undefined,
    logProxyCalls: e.KEYWARD_LOG_PROXY_CALLS === "on",
    logTokenIssuance: e.KEYWARD_LOG_TOKEN_ISSUANCE === "on",
    tokens: {
      defaultTtlSeconds: e.KEYWARD_TOKEN_DEFAULT_TTL_SECONDS,
      maxTtlSeconds: e.KEYWARD_TOKEN_MAX_TTL_SECONDS,
      leewaySeconds: e.KEYWARD_CLOCK_SKEW_SECONDS,
    },
    signingKeys: {
      rotateAfterMs: e.KEYWARD_SIGNING_KEY_ROTATE_DAYS * 86_400_000,
      reloadMs: e.KEYWARD_SIGNING_KEY_RELOAD_MS,
    },
    clientSecretOverlapSeconds: e.KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS,
    policyInspectMaxBytes: e.KEYWARD_POLICY_MAX_INSPECT_BYTES,
    approvals: {
      ttlSeconds: e.KEYWARD_APPROVAL_TTL_SECONDS,
      webhook: e.KEYWARD_APPROVAL_WEBHOOK_URL
        ? { url: e.KEYWARD_APPROVAL_WEBHOOK_URL, authorization: e.KEYWARD_APPROVAL_WEBHOOK_AUTHORIZATION }
        : undefined,
    },
    forwardProxy:
      e.KEYWARD_FORWARD_PROXY_PORT === undefined
        ? undefined
        : { port: e.KEYWARD_FORWARD_PROXY_PORT, host: e.KEYWARD_FORWARD_PROXY_HOST ?? e.HOST },
  };
}
