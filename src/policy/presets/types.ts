import type { HttpMethod } from "../decide.js";

/**
 * One operation a preset protects, by how Keyward recognises it in a call: a GraphQL root mutation field,
 * an HTTP method and path (matched against the upstream's full path, base path included), or an AWS
 * Query/JSON action name.
 */
export type ProtectedMatch =
  | { graphqlMutation: string }
  | { http: { method: HttpMethod; path: string } }
  | { awsAction: string };

export type ProtectedOperation = {
  /** `<preset>.<name>`: what a grant's `allowProtected` names. */
  id: string;
  description: string;
  match: ProtectedMatch;
};

export type Preset = {
  id: string;
  title: string;
  /** The upstream protocol the preset's operations are recognised in. */
  protocol: "http" | "graphql";
  /** API hosts the preset is applied to by default when an upstream is created. */
  hosts: readonly (string | RegExp)[];
  operations: readonly ProtectedOperation[];
};
