import { z } from "zod";
import { badRequest, KeywardError } from "../http/errors.js";
import { HTTP_METHODS } from "../policy/decide.js";
import { pathPattern } from "../grants/grants.js";
import type { TokenRequest } from "../tokens/issue.js";
import { tokenRequestBody } from "../tokens/tokens.js";

/** The RFC 9396 authorization_details type Keyward understands. */
export const AUTHORIZATION_DETAILS_TYPE = "keyward_grant";

/** What an OAuth token request asks for: a grant (client_credentials only) and any narrowing. */
export type RequestedCapabilities = TokenRequest & { grant?: string };

const methodName = z.enum(HTTP_METHODS);

/**
 * `scope`: space-separated entries, `grant:<grant name or id>` (at most one), `method:<METHOD>` and
 * `path:<pattern>` (any number, each narrowing the token to those methods or paths).
 */
export function parseScope(scope: string): RequestedCapabilities {
  const entries = scope.split(" ").filter((s) => s !== "");
  if (entries.length > 100) throw invalidScope("too many scope entries");
  const requested: RequestedCapabilities = {};
  for (const entry of entries) {
    const colon = entry.indexOf(":");
    const kind = colon < 0 ? entry : entry.slice(0, colon);
    const value = colon < 0 ? "" : entry.slice(colon + 1);
    const unknown = () => invalidScope(`unknown scope entry ${entry.slice(0, 100)}`);
    if (kind === "grant") {
      if (!tokenRequestBody.shape.grant.safeParse(value).success) throw unknown();
      if (requested.grant !== undefined) throw invalidScope("the scope names more than one grant");
      requested.grant = value;
    } else if (kind === "method") {
      const method = methodName.safeParse(value);
      if (!method.success) throw unknown();
      (requested.methods ??= []).push(method.data);
    } else if (kind === "path") {
      if (!pathPattern.safeParse(value).success) throw unknown();
      (requested.paths ??= []).push(value);
    } else {
      throw unknown();
    }
  }
  return requested;
}

/** One authorization_details entry: the fields of `POST /v1/tokens`, the grant optional. */
const authorizationDetail = z.strictObject({
  type: z.literal(AUTHORIZATION_DETAILS_TYPE),
  ...tokenRequestBody.shape,
  grant: tokenRequestBody.shape.grant.optional(),
});

/** `authorization_details` (RFC 9396): a JSON array of exactly one `keyward_grant` entry. */
export function parseAuthorizationDetails(json: string): RequestedCapabilities {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalidDetails("authorization_details is not JSON");
  }
  const parsed = z.array(authorizationDetail).length(1).safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw invalidDetails(`authorization_details${issue.path.map((p) => `[${String(p)}]`).join("")}: ${issue.message}`);
  }
  const { type: _type, ...requested } = parsed.data[0]!;
  return requested;
}

/** The two may be combined, but each field (methods, paths, ttlSeconds) may come from one of them only. */
export function requestedCapabilities(scope: string | undefined, authorizationDetails: string | undefined): RequestedCapabilities {
  const fromScope = scope === undefined ? {} : parseScope(scope);
  const fromDetails = authorizationDetails === undefined ? {} : parseAuthorizationDetails(authorizationDetails);
  for (const field of ["methods", "paths", "ttlSeconds"] as const) {
    if (fromScope[field] !== undefined && fromDetails[field] !== undefined) {
      throw badRequest("invalid_request", `${field} given in both scope and authorization_details`);
    }
  }
  if (fromScope.grant !== undefined && fromDetails.grant !== undefined && fromScope.grant !== fromDetails.grant) {
    throw badRequest("invalid_request", "scope and authorization_details name different grants");
  }
  return { ...fromScope, ...fromDetails };
}

const UPSTREAM_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * RFC 8707 `resource`: the upstream a token is for, named as the URL agents call it at,
 * `<issuer>/proxy/<upstream>`. A Keyward token is always confined to its grant's one upstream (the
 * proxy refuses it anywhere else), so a resource is accepted when it names that upstream and refused
 * with invalid_target otherwise; anything that is not such a URL is refused too, never ignored.
 */
export function upstreamOfResource(resource: string, issuer: string): string {
  const prefix = issuer.replace(/\/+$/, "") + "/proxy/";
  const invalidTarget = (why: string) => new KeywardError(400, "invalid_target", `resource ${why}: name the upstream as ${prefix}<upstream>`);
  if (!URL.canParse(resource)) throw invalidTarget("is not an absolute URI");
  if (/[?#]/.test(resource)) throw invalidTarget("must have no query or fragment");
  if (!resource.startsWith(prefix)) throw invalidTarget("is not one of Keyward's upstreams");
  const name = resource.slice(prefix.length).replace(/\/$/, "");
  if (!UPSTREAM_NAME.test(name)) throw invalidTarget("does not name an upstream");
  return name;
}

const invalidScope = (message: string) => new KeywardError(400, "invalid_scope", message);
const invalidDetails = (message: string) => new KeywardError(400, "invalid_authorization_details", message);
