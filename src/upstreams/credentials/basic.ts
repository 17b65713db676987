import { z } from "zod";
import { defineKind, headerSafeText } from "./contract.js";

/** `basic`: HTTP Basic authentication (RFC 7617) with a configured username and a secret password. */
export const basicKind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("basic"),
    // RFC 7617: the user-id cannot contain a colon, it would end the user-id early.
    username: z.string().min(1).max(256).regex(/^[^:\u0000-\u001f\u007f]*$/, "no colon or control characters"),
  }),
  secretSchema: headerSafeText(4096, "the basic kind takes a string secret: the password"),
  compile(auth, password) {
    const encoded = Buffer.from(`${auth.username}:${password}`, "utf8").toString("base64");
    const value = "Basic " + encoded;
    // The encoded pair too: its base64 spells the password only at one alignment (src/redaction/forms.ts).
    const secrets = Object.freeze([password, encoded]);
    return {
      injectedSecrets: () => secrets,
      buffersBody: false,
      ownsHeader: (header) => header === "authorization",
      async prepare(request) {
        request.headers.authorization = value;
      },
    };
  },
});
