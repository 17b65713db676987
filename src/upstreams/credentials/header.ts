import { z } from "zod";
import { isBrokersHeader } from "../../proxy/headers.js";
import { defineKind, headerSafeText } from "./contract.js";

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,100}$/, "not a valid HTTP header name")
  .refine((h) => !isBrokersHeader(h), "a framing, hop-by-hop, forwarding or override header (any case, _ for -) cannot carry a credential");

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
