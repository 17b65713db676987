import { z } from "zod";
import { defineKind, headerSafeText, httpUrl, withMintedTokens } from "./contract.js";
import { requestToken } from "./token-endpoint.js";
import { rejectedBearer, TokenCache } from "./token-cache.js";

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,200}$/, "a scope token: printable ASCII, no space, quote or backslash");

// A token response without expires_in says nothing about its life; it is used this long at most.
const ASSUMED_LIFETIME_SECONDS = 60;
// ...but the provider may accept it far longer (an hour is common, Auth0's default is a day): an answer
// repeating it is redacted for this long, as one repeating a token whose expires_in is known is until then.
const ASSUMED_VALIDITY_SECONDS = 24 * 3600;

/** RFC 6749 §5.1. Servers add fields of their own (scope, ext_expires_in, ...): they are ignored. */
export const tokenResponseSchema = z.object({
  access_token: z.string().min(1).max(16_384).regex(/^[\x21-\x7E]+$/, "printable ASCII"),
  token_type: z.string().refine((t) => t.toLowerCase() === "bearer", "only bearer tokens are supported"),
  // Some servers send the number as a string.
  expires_in: z
    .union([z.number(), z.string().regex(/^\d{1,9}$/).transform(Number)])
    .pipe(z.number().int().positive().max(366 * 24 * 3600))
    .optional(),
});

/** The form body and headers of a client-credentials token request (RFC 6749 §4.4.2, client auth §2.3.1). */
export function tokenRequestParts(
  auth: { clientId: string; scopes?: string[]; clientAuth: "client_secret_basic" | "client_secret_post" },
  clientSecret: string,
): { headers: Record<string, string>; body: string } {
  const form = new URLSearchParams({ grant_type: "client_credentials" });
  if (auth.scopes?.length) form.set("scope", auth.scopes.join(" "));
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
    accept: "application/json",
  };
  if (auth.clientAuth === "client_secret_basic") {
    // §2.3.1: both parts are form-urlencoded before they are joined and base64-encoded.
    const formEncode = (s: string) => new URLSearchParams({ s }).toString().slice(2);
    headers.authorization = "Basic " + Buffer.from(`${formEncode(auth.clientId)}:${formEncode(clientSecret)}`).toString("base64");
  } else {
    form.set("client_id", auth.clientId);
    form.set("client_secret", clientSecret);
  }
  return { headers, body: form.toString() };
}

/**
 * `oauth2-client-credentials`: the broker exchanges the client id and secret for an access token at the
 * token URL, caches it until shortly before it expires, and sends it as `Authorization: Bearer`. The
 * scopes are fixed by this config, the same for every grant.
 */
export const oauth2ClientCredentialsKind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("oauth2-client-credentials"),
    tokenUrl: httpUrl,
    clientId: headerSafeText(1000, "clientId must be a string"),
    scopes: z.array(scopeToken).max(100).optional(),
    clientAuth: z.enum(["client_secret_basic", "client_secret_post"]).default("client_secret_basic"),
  }),
  secretSchema: headerSafeText(4096, "the oauth2-client-credentials kind takes a string secret: the client secret"),
  compile(auth, clientSecret, context) {
    const tokenUrl = new URL(auth.tokenUrl);
    const { headers, body } = tokenRequestParts(auth, clientSecret);
    const cache = new TokenCache(context.now);
    const obtain = async () => {
      const requestedAt = context.now();
      const answer = await requestToken(
        { url: tokenUrl, headers, body, expectedStatus: 200, dispatcher: context.dispatcher, deadlineMs: context.tokenDeadlineMs },
        tokenResponseSchema,
      );
      if (answer.expires_in !== undefined) return { value: answer.access_token, expiresAt: requestedAt + answer.expires_in * 1000 };
      return {
        value: answer.access_token,
        expiresAt: requestedAt + ASSUMED_LIFETIME_SECONDS * 1000,
        validUntil: requestedAt + ASSUMED_VALIDITY_SECONDS * 1000,
      };
    };
    return {
      injectedSecrets: withMintedTokens([clientSecret], () => cache.minted),
      buffersBody: false,
      ownsHeader: (header) => header === "authorization",
      async prepare(request) {
        request.headers.authorization = `Bearer ${await cache.get("", obtain)}`;
      },
      rejected: (request) => rejectedBearer(cache, request),
    };
  },
});
