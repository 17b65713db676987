import { z } from "zod";
import { awsSigV4Kind } from "./aws-sigv4.js";
import { basicKind } from "./basic.js";
import type { CompileContext, UpstreamCredential } from "./contract.js";
import { githubAppKind } from "./github-app.js";
import { headerKind } from "./header.js";
import { oauth2ClientCredentialsKind } from "./oauth2-client-credentials.js";
import { queryKind } from "./query.js";

export type { CompileContext, OutgoingRequest, RequestScope, UpstreamCredential } from "./contract.js";

/**
 * Non-secret settings of how the upstream's credential is presented, one shape per kind. Stored as the
 * upstream's authConfig, and parsed again from there when it is compiled.
 */
export const authConfigSchema = z.discriminatedUnion("type", [
  headerKind.authSchema,
  queryKind.authSchema,
  basicKind.authSchema,
  awsSigV4Kind.authSchema,
  oauth2ClientCredentialsKind.authSchema,
  githubAppKind.authSchema,
]);
export type AuthConfig = z.infer<typeof authConfigSchema>;
type KindName = AuthConfig["type"];

/** The secret as the API takes it: a string, or an object of strings for a kind that needs several parts. */
export const secretInput = z.union([z.string().max(16_384), z.record(z.string().max(100), z.string().max(16_384))]);
export type SecretInput = z.infer<typeof secretInput>;

const SECRET_SCHEMAS: Record<KindName, z.ZodType> = {
  header: headerKind.secretSchema,
  query: queryKind.secretSchema,
  basic: basicKind.secretSchema,
  "aws-sigv4": awsSigV4Kind.secretSchema,
  "oauth2-client-credentials": oauth2ClientCredentialsKind.secretSchema,
  "github-app": githubAppKind.secretSchema,
};

/** The secret as the vault encrypts it: a string as it is, an object as JSON. */
export const encodeSecret = (secret: SecretInput): string => (typeof secret === "string" ? secret : JSON.stringify(secret));

/** An object secret back from its JSON. JSON.parse's own error quotes its input: it must not reach a log. */
function parseStoredObject(stored: string): unknown {
  try {
    return JSON.parse(stored);
  } catch {
    throw new Error("the stored secret is not the JSON object its kind needs");
  }
}

export type SecretProblem = { path: string[]; message: string };

/** Why this secret does not fit this kind, under the path `secret`; empty when it fits. Never echoes the secret. */
export function secretProblems(type: KindName, secret: unknown): SecretProblem[] {
  const result = SECRET_SCHEMAS[type].safeParse(secret);
  if (result.success) return [];
  return result.error.issues.map((issue) => ({
    path: ["secret", ...issue.path.map(String)],
    // zod names each unrecognized key, and a key of a secret may be secret text pasted in the wrong place.
    message: issue.code === "unrecognized_keys" ? `Unrecognized key (${issue.keys.length}, not repeated here)` : issue.message,
  }));
}

/**
 * Compiles the stored config and the decrypted secret (as encodeSecret stored it) once into the
 * upstream's credential. Throws if they no longer fit each other (they were checked when written): the
 * proxy then fails closed.
 */
export function compileCredential(auth: AuthConfig, secret: string, context: CompileContext): UpstreamCredential {
  switch (auth.type) {
    case "header":
      return headerKind.compile(auth, headerKind.secretSchema.parse(secret), context);
    case "query":
      return queryKind.compile(auth, queryKind.secretSchema.parse(secret), context);
    case "basic":
      return basicKind.compile(auth, basicKind.secretSchema.parse(secret), context);
    case "aws-sigv4":
      return awsSigV4Kind.compile(auth, awsSigV4Kind.secretSchema.parse(parseStoredObject(secret)), context);
    case "oauth2-client-credentials":
      return oauth2ClientCredentialsKind.compile(auth, oauth2ClientCredentialsKind.secretSchema.parse(secret), context);
    case "github-app":
      return githubAppKind.compile(auth, githubAppKind.secretSchema.parse(secret), context);
  }
}
