import type { FastifyInstance } from "fastify";
import { validationFailed } from "./errors.js";

// NUL, and UTF-16 surrogates without their other half.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The JSON-pointer path of the first string (or key) PostgreSQL cannot store, or null. */
export function findUnstorableText(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, ""]];
  while (stack.length > 0) {
    const [item, path] = stack.pop()!;
    if (typeof item === "string") {
      if (UNSTORABLE.test(item)) return path;
    } else if (item !== null && typeof item === "object") {
      for (const [key, child] of Object.entries(item)) {
        const at = `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
        if (UNSTORABLE.test(key)) return at;
        stack.push([child, at]);
      }
    }
  }
  return null;
}

/**
 * PostgreSQL stores neither NUL characters (text, jsonb) nor unpaired surrogates, and fails the whole
 * query on them: such input is refused with a 400 before any route of `app`'s scope sees it, instead of
 * becoming a 500. Installed in the API's scope only (src/server.ts): a proxied call's query string and
 * body belong to the upstream and are not parsed here.
 */
export function rejectUnstorableText(app: FastifyInstance): void {
  app.addHook("preValidation", async (request) => {
    for (const [part, value] of [["body", request.body], ["querystring", request.query], ["params", request.params]] as const) {
      const at = findUnstorableText(value);
      if (at !== null) {
        throw validationFailed([{ path: `${part}${at}`, message: "NUL characters and unpaired surrogates are not allowed" }]);
      }
    }
  });
}
