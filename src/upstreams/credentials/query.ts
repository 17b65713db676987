import { z } from "zod";
import { defineKind, headerSafeText } from "./contract.js";

/** `query`: a static secret in one query parameter, e.g. `?key=<secret>`. */
export const queryKind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("query"),
    param: z.string().regex(/^[A-Za-z0-9_.\-]{1,100}$/, "letters, digits, _ . - only"),
  }),
  secretSchema: headerSafeText(16_384, "the query kind takes a string secret"),
  compile(auth, secret) {
    const param = auth.param;
    const secrets = Object.freeze([secret]);
    return {
      injectedSecrets: () => secrets,
      buffersBody: false,
      ownsHeader: () => false,
      async prepare(request) {
        // The agent's own value for this parameter is dropped, never forwarded alongside ours.
        const query = new URLSearchParams(request.url.search);
        query.delete(param);
        query.append(param, secret);
        request.url.search = query.toString();
      },
    };
  },
});
