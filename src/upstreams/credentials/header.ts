import { z } from "zod";
import { defineKind, headerSafeText } from "./contract.js";

// Header names an injected credential may not take over: framing and hop-by-hop headers (a second
// Content-Length or Transfer-Encoding smuggles a request), the host, forwarding identities, and the
// overrides and body headers the decision read (src/proxy/headers.ts never takes those from an agent either).
const RESERVED_HEADERS = new Set([
  "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "upgrade", "te",
  "trailer", "proxy-authorization", "proxy-authenticate", "expect", "forwarded", "x-real-ip", "x-http-method-override",
  "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
  "content-type", "content-encoding",
]);

/**
 * Whether a header name is reserved, in any case and with `_` for `-`: CGI-style servers (Rack on Puma,
 * WSGI, PHP) read `Content_Length` as `Content-Length` (REQ-36).
 */
function isReservedHeader(name: string): boolean {
  const spelled = name.toLowerCase().replace(/_/g, "-");
  return RESERVED_HEADERS.has(spelled) || spelled.startsWith("x-forwarded-");
}

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,100}$/, "not a valid HTTP header name")
  .refine((h) => !isReservedHeader(h), "a framing, hop-by-hop, forwarding or override header (any case, _ for -) cannot carry a credential");

/** `header`: a static secret in one request header, e.g. `Authorization: Bearer <secret>` or `X-Api-Key: <secret>`. */
export const headerKind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("header"),
    header: headerName.default("Authorization"),
    template: z
      .string()
      .max(200)
      .refine((t) => t.split("{secret}").length === 2, "must contain {secret} exactly once")
      .refine((t) => !/[\r\n\u0000]/.test(t), "no line breaks")
      .default("Bearer {secret}"),
  }),
  secretSchema: headerSafeText(16_384, "the header kind takes a string secret"),
  compile(auth, secret) {
    const name = auth.header.toLowerCase();
    // A function replacement: "$&" and friends in the secret are inserted literally.
    const value = auth.template.replace("{secret}", () => secret);
    const secrets = Object.freeze([secret]);
    // Asked in the hyphenated spelling (see ownsHeader): `api_key` owns `api-key` and `api_key` alike.
    const owned = name.replace(/_/g, "-");
    return {
      injectedSecrets: () => secrets,
      buffersBody: false,
      ownsHeader: (header) => header === owned,
      async prepare(request) {
        request.headers[name] = value;
      },
    };
  },
});
