import { z } from "zod";
import { decodeRepeatedly, nameReadings } from "../../policy/query.js";
import { defineKind, headerSafeText } from "./contract.js";

/**
 * Whether an agent's parameter (its name as URLSearchParams decoded it) could be read as the injected one
 * by some server: the readings query deny rules match on (src/policy/query.ts), so `api_key[]` (an array
 * in qs, PHP and Rack), `api.key`, `api key` and `api_key%00` (PHP mangles and cuts them to `api_key`),
 * `api%255Fkey` (a server decoding twice) and `API_KEY` (ASP.NET ignores case) are all `api_key`.
 */
const readAsOneOf = (readings: ReadonlySet<string>) => (name: string) => nameReadings(decodeRepeatedly(name)).some((reading) => readings.has(reading));

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
    // Both ways round: a server that reads `api.key` as `api_key` reads the agent's `api_key` as the injected `api.key`.
    const isParam = readAsOneOf(new Set(nameReadings(param)));
    return {
      injectedSecrets: () => secrets,
      buffersBody: false,
      ownsHeader: () => false,
      async prepare(request) {
        // The agent's own value for this parameter is dropped, in any spelling a server reads as it, never
        // forwarded alongside ours. Serialised again, a `;` in a value is escaped: no server splits on it.
        const query = new URLSearchParams(request.url.search);
        for (const name of new Set(query.keys())) if (isParam(name)) query.delete(name);
        query.append(param, secret);
        request.url.search = query.toString();
      },
    };
  },
});
