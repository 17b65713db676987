import { z } from "zod";

/** The request about to leave for the upstream; an injector edits it in place. */
export type OutgoingRequest = { headers: Record<string, string>; rawQuery: string };
export type Injector = (request: OutgoingRequest) => void;

// Header names an injected credential may not take over: hop-by-hop and framing headers.
const RESERVED_HEADERS = new Set([
  "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
  "proxy-authorization", "proxy-authenticate", "expect",
]);

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,100}$/, "not a valid HTTP header name")
  .refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), "this header cannot carry a credential");

/** Non-secret settings of how the upstream's secret is presented. Stored as the upstream's authConfig. */
export const authConfigSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("header"),
    header: headerName.default("Authorization"),
    template: z
      .string()
      .max(200)
      .refine((t) => t.split("{secret}").length === 2, "must contain {secret} exactly once")
      .refine((t) => !/[\u0000-\u001f\u007f]/.test(t), "no control characters or line breaks")
      .default("Bearer {secret}"),
  }),
  z.strictObject({
    type: z.literal("query"),
    param: z.string().regex(/^[A-Za-z0-9_.\-]{1,100}$/, "letters, digits, _ . - only"),
  }),
]);
export type AuthConfig = z.infer<typeof authConfigSchema>;

/** A secret must be safe to place in a header or query value. */
export const secretSchema = z
  .string()
  .min(1)
  .max(16_384)
  .regex(/^[^\u0000-\u001f\u007f]*$/, "no control characters or line breaks");

/** Names of headers the agent may not send upstream because a credential kind owns them. */
export function headersOwnedBy(auth: AuthConfig): string[] {
  return auth.type === "header" ? [auth.header.toLowerCase()] : [];
}

/** Compiles the stored config and the decrypted secret once into a per-request injector. */
export function compileInjector(auth: AuthConfig, secret: string): Injector {
  switch (auth.type) {
    case "header": {
      const name = auth.header.toLowerCase();
      const value = auth.template.replace("{secret}", () => secret);
      return (request) => {
        request.headers[name] = value;
      };
    }
    case "query": {
      const param = auth.param;
      return (request) => {
        // The agent's own value for this parameter is dropped, never forwarded alongside ours.
        const query = new URLSearchParams(request.rawQuery);
        query.delete(param);
        query.append(param, secret);
        request.rawQuery = query.toString();
      };
    }
  }
}
