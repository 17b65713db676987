import { randomUUID } from "node:crypto";
import type { DestinationStream } from "pino";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { adminRoutes, type AdminDeps } from "./admin/routes.js";
import type { Config } from "./config/config.js";
import { registerErrorHandling, toErrorResponse } from "./http/error-handler.js";
import { proxyPlugin, type ProxyDeps } from "./proxy/plugin.js";
import { tokenRoutes, type TokenRouteDeps } from "./tokens/routes.js";

export type ServerDeps = AdminDeps & ProxyDeps & TokenRouteDeps;

/** Anything that could carry a credential, wherever it shows up in a log object. */
const REDACTED_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  "*.secret",
  "*.clientSecret",
  "*.access_token",
  "*.key",
  "*.masterKey",
];

/** Builds the Fastify app (no listen): tests and main.ts both start from here. */
export async function buildServer(
  config: Pick<Config, "logLevel" | "adminMaxBodyBytes">,
  deps: ServerDeps,
  logStream?: DestinationStream,
): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      serializers: {
        // The query string is left out of logs: agents may put anything there.
        req: (req) => ({ id: req.id, method: req.method, path: (req.url ?? "").split("?")[0] }),
      },
      ...(logStream && { stream: logStream }),
    },
    genReqId: () => randomUUID(),
    bodyLimit: config.adminMaxBodyBytes,
    // Slow or stalled clients are cut off instead of holding sockets forever.
    requestTimeout: 120_000,
    connectionTimeout: 0,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // Errors raised before routing (an undecodable URL) get the same error shape as everything else.
    frameworkErrors: (err, _request, reply) => {
      const { status, body, headers } = toErrorResponse(err);
      void (reply as FastifyReply).code(status).headers(headers).send(body);
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  await app.register(tokenRoutes, deps);
  await app.register(adminRoutes, deps);
  await app.register(proxyPlugin, deps);
  return app;
}
