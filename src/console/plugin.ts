import { existsSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import fastifyStatic from "@fastify/static";
import { unavailable } from "../http/errors.js";
import { projectPath } from "../util/project-root.js";

/** Where `npm run build:console` writes the console (see console/vite.config.ts). */
export const CONSOLE_DIST = projectPath("console", "dist") + "/";
export const CONSOLE_PREFIX = "/console";

/**
 * The console runs only its own bundled script and stylesheet and talks only to this origin; it cannot be
 * framed (clickjacking a Revoke or kill-switch button), and sends no referrer.
 */
export const CONSOLE_SECURITY_HEADERS = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
} as const;

/** Vite names every asset by its content hash; only the page itself must be fetched afresh. */
function setCacheHeaders(reply: FastifyReply, path: string): void {
  reply.header("cache-control", path.endsWith(".html") ? "no-cache" : "public, max-age=31536000, immutable");
}

/**
 * The security console (console/, a static single-page app) at /console/. It holds no secrets and has no
 * privileges of its own: it calls the same admin API, with the key the user signs in with. Without a
 * build (console/dist), /console answers 503 with how to build it; the broker itself is unaffected.
 */
export async function consolePlugin(app: FastifyInstance, options: { root?: string } = {}): Promise<void> {
  const root = options.root ?? CONSOLE_DIST;
  app.addHook("onSend", async (_request, reply) => {
    reply.headers(CONSOLE_SECURITY_HEADERS);
  });
  if (!existsSync(join(root, "index.html"))) {
    const notBuilt = async () => {
      throw unavailable("console_not_built", "the console has not been built: run `npm run build:console` (or `npm install`)");
    };
    app.get(CONSOLE_PREFIX, { schema: { hide: true } }, notBuilt);
    app.get(`${CONSOLE_PREFIX}/*`, { schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: CONSOLE_PREFIX, // served under /console/, and /console redirects there
    redirect: true,
    index: "index.html",
    dotfiles: "ignore",
    decorateReply: false,
    cacheControl: false,
    setHeaders: setCacheHeaders,
  });
}
