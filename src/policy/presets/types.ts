import type { RedactRule } from "../../redaction/rules.js";
import type { HttpMethod } from "../decide.js";

/**
 * One operation a preset protects, by how Keyward recognises it in a call: a GraphQL root mutation field,
 * an HTTP method, path (matched against the upstream's full path, base path included) and query, an AWS
 * Query/JSON action name, or S3 REST operations.
 */
export type ProtectedMatch =
  | { graphqlMutation: string }
  | { http: { method: HttpMethod; path: string; query?: Readonly<Record<string, string>> } }
  /**
   * With `zeroed`, only a call that sets that integer parameter to 0 (or to anything but a plain positive
   * integer, or more than once: what the API might read as 0), as the Query protocol passes parameters.
   */
  | { awsAction: string; zeroed?: string }
  /** S3 REST operations by AWS's names, as src/policy/s3.ts reads them from method, path and query. */
  | { s3: readonly string[] };

export type ProtectedOperation = {
  /** `<preset>.<name>`: what a grant's `allowProtected` names. */
  id: string;
  description: string;
  match: ProtectedMatch;
};

/**
 * Secrets a preset's API returns on purpose, redacted from responses by default (src/redaction/rules.ts);
 * a grant opts out by naming `id` in `redactOptOut`, and the calls that then show them are audited so.
 */
export type PresetRedaction = {
  /** `<preset>.<name>`: what a grant's `redactOptOut` names. */
  id: string;
  description: string;
  rules: readonly RedactRule[];
};

export type Preset = {
  id: string;
  title: string;
  /** The upstream protocol the preset's operations are recognised in. */
  protocol: "http" | "graphql";
  /** API hosts the preset is applied to by default when an upstream is created. */
  hosts: readonly (string | RegExp)[];
  operations: readonly ProtectedOperation[];
  redactions?: readonly PresetRedaction[];
};
