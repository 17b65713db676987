import { createPrivateKey, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";
import { z } from "zod";
import type { HttpMethod } from "../../policy/decide.js";
import { defineKind, withMintedTokens, wrongTypeMessage, type RequestScope } from "./contract.js";
import { requestToken } from "./token-endpoint.js";
import { rejectedBearer, TokenCache } from "./token-cache.js";

const permissionLevel = z.enum(["read", "write", "admin"]);
type PermissionLevel = z.infer<typeof permissionLevel>;

// The methods that cannot change anything on GitHub's REST API.
const READ_METHODS: ReadonlySet<HttpMethod> = new Set(["GET", "HEAD", "OPTIONS"]);

// GitHub refuses app JWTs that live longer than ten minutes, and allows for clock drift backwards.
const APP_JWT_BACKDATE_SECONDS = 60;
const APP_JWT_LIFETIME_SECONDS = 9 * 60;

/** The PEM GitHub hands out for an app ("BEGIN RSA PRIVATE KEY"; PKCS#8 works too): RSA, 2048 bits or more. */
export const githubAppPrivateKey = z
  .string(wrongTypeMessage("the github-app kind takes a string secret: the app's private key in PEM"))
  .max(16_384)
  .transform((pem, ctx) => {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      ctx.addIssue({ code: "custom", message: "not a PEM private key" });
      return z.NEVER;
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== "rsa" || bits < 2048) {
      ctx.addIssue({ code: "custom", message: "must be an RSA private key of at least 2048 bits" });
      return z.NEVER;
    }
    return key;
  });

/** `/repos/<owner>/<repo>/...` with both literal: the repository name, else null. */
function repositoryOf(pattern: string): string | null {
  const [first, owner, repo] = pattern.split("/").slice(1);
  const literal = (segment: string | undefined) => !!segment && segment !== "*" && segment !== "**" && !segment.startsWith("{");
  return first === "repos" && literal(owner) && literal(repo) ? repo! : null;
}

/**
 * What the installation token asks GitHub for, narrowed to the grant where GitHub's API allows:
 * - `repositories`: when every path of the grant lies under a literal `/repos/<owner>/<repo>`, only those
 *   repositories. Any other path (`/repos/*`, `/graphql`, `/user`, `/**`, ...) leaves the token for all
 *   repositories of the installation. GitHub takes repository names, not owners.
 * - `permissions`: the ones configured on the upstream, each capped at `read` when the grant allows only
 *   GET, HEAD and OPTIONS. With none configured the token has all of the installation's permissions.
 * Deny rules and the agent token's own (narrower) capability are not reflected: the proxy enforces them.
 */
export function installationTokenScope(
  grant: RequestScope["grant"],
  permissions: Record<string, PermissionLevel> | undefined,
): { repositories?: string[]; permissions?: Record<string, PermissionLevel> } {
  const named = grant.paths.map(repositoryOf);
  const repositories = named.every((r) => r !== null) ? [...new Set(named as string[])].sort() : undefined;
  const readOnly = grant.methods.every((m) => READ_METHODS.has(m));
  const narrowed =
    permissions && readOnly ? Object.fromEntries(Object.keys(permissions).map((p) => [p, "read" as const])) : permissions;
  return { ...(repositories && { repositories }), ...(narrowed && { permissions: narrowed }) };
}

/** What GitHub gives an installation token: one hour (docs.github.com, "Generating an installation access token"). */
const INSTALLATION_TOKEN_LIFETIME_MS = 60 * 60 * 1000;

const installationTokenResponse = z.object({
  token: z.string().min(1).max(4096).regex(/^[\x21-\x7E]+$/, "printable ASCII"),
  expires_at: z.iso.datetime({ offset: true }),
});

/**
 * `github-app`: the broker signs an app JWT (RS256) with the app's private key, exchanges it at
 * `<baseUrl>/app/installations/<installationId>/access_tokens` for an installation token narrowed to the
 * grant (see installationTokenScope), caches that until shortly before its `expires_at`, and sends it as
 * `Authorization: Bearer`. The baseUrl is the API base: https://api.github.com, or
 * https://<host>/api/v3 for GitHub Enterprise Server.
 */
export const githubAppKind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("github-app"),
    appId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    installationId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    permissions: z.record(z.string().regex(/^[a-z_]{1,64}$/, "a GitHub permission name"), permissionLevel).optional(),
  }),
  secretSchema: githubAppPrivateKey,
  compile(auth, privateKey, context) {
    const url = new URL(`${context.baseUrl.href.replace(/\/+$/, "")}/app/installations/${auth.installationId}/access_tokens`);
    const cache = new TokenCache(context.now);

    const appJwt = () => {
      const now = Math.floor(context.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: "RS256", typ: "JWT" })
        .setIssuer(String(auth.appId))
        .setIssuedAt(now - APP_JWT_BACKDATE_SECONDS)
        .setExpirationTime(now + APP_JWT_LIFETIME_SECONDS)
        .sign(privateKey);
    };
    const obtain = async (scope: ReturnType<typeof installationTokenScope>) => {
      const requestedAt = context.now();
      const answer = await requestToken(
        {
          url,
          headers: {
            authorization: `Bearer ${await appJwt()}`,
            accept: "application/vnd.github+json",
            "content-type": "application/json",
            "user-agent": "keyward",
            "x-github-api-version": "2022-11-28",
          },
          body: JSON.stringify(scope),
          expectedStatus: 201,
          dispatcher: context.dispatcher,
          deadlineMs: context.tokenDeadlineMs,
        },
        installationTokenResponse,
      );
      // Never kept past the lifetime GitHub gives installation tokens, whatever the endpoint says: a far
      // `expires_at` would pin one token (and the access it had) in the cache for as long as it claims.
      return { value: answer.token, expiresAt: Math.min(Date.parse(answer.expires_at), requestedAt + INSTALLATION_TOKEN_LIFETIME_MS) };
    };

    return {
      // The private key never leaves the broker; the installation tokens it mints do.
      injectedSecrets: withMintedTokens([], () => cache.minted),
      buffersBody: false,
      ownsHeader: (header) => header === "authorization",
      async prepare(request, { grant }) {
        const scope = installationTokenScope(grant, auth.permissions);
        // One cached token per distinct narrowing: grants with the same scope share it.
        const token = await cache.get(JSON.stringify(scope), () => obtain(scope));
        request.headers.authorization = `Bearer ${token}`;
      },
      rejected: (request) => rejectedBearer(cache, request),
    };
  },
});
