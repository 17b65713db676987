import { randomUUID } from "node:crypto";
import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { pino, type DestinationStream } from "pino";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { adminRoutes, type AdminDeps } from "./admin/routes.js";
import { directoryRoutes } from "./admin/directory-routes.js";
import { agentCredentialRoutes, type AgentCredentialRouteDeps } from "./agents/credential-routes.js";
import { auditLiveRoutes } from "./audit/live-routes.js";
import { approvalAdminRoutes, approvalAgentRoutes, type ApprovalRouteDeps } from "./approvals/routes.js";
import { environmentRoutes, type EnvironmentRouteDeps } from "./environments/routes.js";
import type { Config } from "./config/config.js";
import { consolePlugin } from "./console/plugin.js";
import { forwardProxyRoutes, type ForwardProxyCa } from "./forward-proxy/index.js";
import { BROKER_ERROR_HEADER, registerErrorHandling, setErrorResponses, toErrorResponse } from "./http/error-handler.js";
import { lazyChildLogger } from "./http/lazy-logger.js";
import { collectOpenApi, openApiRoutes } from "./http/openapi.js";
import { rejectUnstorableText } from "./http/text.js";
import { opsRoutes, type OpsDeps } from "./ops/routes.js";
import { policyRoutes } from "./policy/routes.js";
import type { SimulateDeps } from "./policy/simulate.js";
import { proxyPlugin, type ProxyDeps } from "./proxy/plugin.js";
import { liveTokenRoutes } from "./tokens/live-routes.js";
import { oauthRoutes, type OAuthDeps } from "./oauth/routes.js";
import { tokenRoutes, type TokenRouteDeps } from "./tokens/routes.js";
import { signingKeyRoutes, type SigningKeyRouteDeps } from "./signing-keys/routes.js";

export type ServerDeps = AdminDeps &
  ProxyDeps &
  TokenRouteDeps &
  OAuthDeps &
  SigningKeyRouteDeps &
  AgentCredentialRouteDeps &
  ApprovalRouteDeps &
  EnvironmentRouteDeps &
  SimulateDeps &
  OpsDeps & {
    /** Transparent mode's CA, when it is on: its routes join the API's. */
    forwardProxyCa: ForwardProxyCa | null;
  };

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
  // undici's HTTPParserError keeps the upstream's bytes from where its parser stopped: a body echoing the
  // injected credential, whole.
  "err.data",
  "err.cause.data",
];

/**
 * Requests Node's HTTP parser refuses before any route runs (malformed, smuggling-shaped, oversized
 * headers, timed out) get the same error shape as everything else, then the connection is closed.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "request_timeout", "request not received in time"]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "headers_too_large", "request headers too large"]
        : [400, "bad_request", "malformed HTTP request"];
  // A response already under way (a proxied stream) cannot be replaced: the connection is just cut.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n${BROKER_ERROR_HEADER}: ${code}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * The broker's one logger, made before anything that reports through it (database, signing keys, audit
 * log, background work) and handed to the Fastify app, whose request loggers are its children.
 */
export function createLogger(config: Pick<Config, "logLevel">, logStream?: DestinationStream): FastifyBaseLogger {
  return pino(
    {
      level: config.logLevel,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      serializers: {
        // The query string is left out of logs: agents may put anything there.
        req: (req: FastifyRequest) => ({ id: req.id, method: req.method, path: (req.url ?? "").split("?")[0] }),
      },
    },
    logStream,
  );
}

/** Builds the Fastify app (no listen): tests and main.ts both start from here. */
export async function buildServer(
  config: Pick<Config, "adminMaxBodyBytes" | "requestTimeoutMs" | "headersTimeoutMs" | "logProxyCalls" | "logTokenIssuance">,
  deps: ServerDeps,
  log: FastifyBaseLogger,
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log,
    genReqId: () => randomUUID(),
    // One line per request (logEveryRequest below) instead of Fastify's two: every proxied
    // call pays for its log lines, and the second one says nothing the first does not.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.adminMaxBodyBytes,
    // Slow or stalled clients (slowloris) are cut off with a 408 instead of holding sockets forever:
    // the headers within headersTimeoutMs, the whole request, body included, within requestTimeoutMs.
    // Node checks these every connectionsCheckingInterval, so that is kept well below them.
    requestTimeout: config.requestTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: config.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(config.headersTimeoutMs / 4))),
    },
    connectionTimeout: 0,
    clientErrorHandler,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // Errors raised before routing (an undecodable URL) get the same error shape as everything else.
    frameworkErrors: (err, _request, reply) => {
      const { status, body, headers } = toErrorResponse(err);
      void (reply as FastifyReply).code(status).headers(headers).header(BROKER_ERROR_HEADER, body.error.code).send(body);
    },
  });
  // A request's logger is made only once it logs: a proxied call or an issued token nearly never does.
  app.setChildLoggerFactory(lazyChildLogger);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  // Callback style, not async: it runs for every proxied call, and an async hook costs a promise each time.
  app.addHook("onSend", (request, reply, payload, done) => {
    reply.header("x-request-id", request.id);
    // Shutting down: the connection closes after this response instead of idling in keep-alive, so
    // that close() finishes once the in-flight calls have, not keepAliveTimeout later.
    if (!app.server.listening) reply.header("connection", "close");
    done(null, payload);
  });

  // First, so that it sees every route added after it, in either scope below.
  await collectOpenApi(app);
  // Two scopes, each with its own hooks: the API (admin, tokens, OAuth, operations, console), whose input
  // is stored and which logs every request but the tokens it issues (each a token.issued audit event
  // already, unless KEYWARD_LOG_TOKEN_ISSUANCE=on); and the proxy, whose bodies belong to the upstream and
  // whose audit events are its access record, so it pays for no log line unless KEYWARD_LOG_PROXY_CALLS=on.
  await app.register(async (api) => {
    rejectUnstorableText(api);
    logEveryRequest(api, { skipIssuedTokens: !config.logTokenIssuance });
    await api.register(openApiRoutes);
    await api.register(opsRoutes, deps);
    await api.register(tokenRoutes, deps);
    await api.register(oauthRoutes, deps);
    await api.register(signingKeyRoutes, deps);
    await api.register(agentCredentialRoutes, deps);
    await api.register(adminRoutes, deps);
    await api.register(environmentRoutes, deps);
    await api.register(approvalAdminRoutes, deps);
    await api.register(approvalAgentRoutes, deps);
    await api.register(policyRoutes, deps);
    // The security console and the admin routes only it needs so far.
    await api.register(directoryRoutes, deps);
    await api.register(liveTokenRoutes, deps);
    await api.register(auditLiveRoutes, deps);
    await api.register(consolePlugin);
    if (deps.forwardProxyCa) await api.register(forwardProxyRoutes, { ...deps, forwardProxyCa: deps.forwardProxyCa });
  });
  await app.register(async (proxy) => {
    // A refused call is an audit event already (its access record): its log line is for debugging.
    setErrorResponses(proxy, "debug");
    if (config.logProxyCalls) logEveryRequest(proxy);
    await proxy.register(proxyPlugin, deps);
  });
  return app;
}

/**
 * One access log line per completed request of the routes in `scope` (Fastify's own two are disabled).
 * With `skipIssuedTokens`, a token-issuing route's 200 gets none: its token.issued event is its record, and
 * the line (an asynchronous write through libuv's thread pool) cost 45-230 µs of CPU per token, measured.
 */
function logEveryRequest(scope: FastifyInstance, options: { skipIssuedTokens?: boolean } = {}): void {
  scope.addHook("onResponse", async (request, reply) => {
    if (options.skipIssuedTokens && reply.statusCode === 200 && request.routeOptions.config.issuesTokens) return;
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, "request completed");
  });
}
