import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { Dispatcher } from "undici";
import { appendAudit, type AuditInput } from "../audit/audit.js";
import type { Grants } from "../grants/grants.js";
import { bearerToken } from "../http/auth-header.js";
import { forbidden, KeywardError, notFound, payloadTooLarge, unavailable } from "../http/errors.js";
import { decide } from "../policy/decide.js";
import { normalisePath } from "../policy/paths.js";
import type { RevocationService } from "../revocation/service.js";
import type { KeySet } from "../tokens/signing-keys.js";
import { verifyAgentToken } from "../tokens/verify.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import { forward, limitBody, upstreamUrl } from "./forward.js";
import { requestHeadersForUpstream, responseHeadersForAgent } from "./headers.js";
import { parseProxyTarget } from "./target.js";

export type ProxyDeps = {
  prisma: PrismaClient;
  keys: () => KeySet;
  revocations: RevocationService;
  grants: Grants;
  upstreams: Upstreams;
  dispatcher: Dispatcher;
  claims: { issuer: string; audience: string };
  maxBodyBytes: number;
};

const PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * `ANY /proxy/:upstream/*`: authenticate → check revocation → resolve → decide → audit → inject →
 * forward. Each step passes or throws a KeywardError; nothing is forwarded unless every step passed
 * and the allow decision is in the audit log. Every outcome, allowed or not, is audited.
 */
export async function proxyPlugin(app: FastifyInstance, deps: ProxyDeps): Promise<void> {
  // Bodies are streamed to the upstream untouched, never parsed here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));

  const writeAudit = async (request: FastifyRequest, event: AuditInput) => {
    try {
      await appendAudit(deps.prisma, event);
    } catch (err) {
      request.log.error({ err }, "audit write failed");
      throw unavailable("audit_unavailable", "audit log unavailable; refusing to forward");
    }
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const startedAt = performance.now();
    const audit: AuditInput = { kind: "proxy", actor: "anonymous", requestId: request.id, method: request.method };
    let allowed = false;
    try {
      const target = parseProxyTarget(request.raw.url ?? "");
      if (!target) throw notFound("upstream");
      Object.assign(audit, { upstream: target.upstream, path: target.rawPath.slice(0, 2000) });

      // 1. authenticate
      const token = await verifyAgentToken(bearerToken(request), deps.keys(), deps.claims);
      Object.assign(audit, { actor: `agent:${token.agentId}`, agentId: token.agentId, jti: token.jti, grantId: token.grantId });
      // 2. check revocation
      deps.revocations.assertNotRevoked(token);
      // 3. resolve
      const upstreamRow = await deps.prisma.upstream.findUnique({ where: { name: target.upstream } });
      if (!upstreamRow) throw notFound(`upstream ${target.upstream}`);
      const path = normalisePath(target.rawPath);
      if (!path.ok) throw forbidden(path.reason, "invalid_path");
      audit.path = path.path.decoded;
      const grant = await deps.grants.policyFor(token.grantId);
      // 4. decide
      const decision = decide(token, grant, { upstream: target.upstream, method: request.method, path: path.path });
      if (!decision.allow) throw forbidden(decision.reason);
      const declaredLength = Number(request.headers["content-length"] ?? 0);
      if (declaredLength > deps.maxBodyBytes) throw payloadTooLarge(deps.maxBodyBytes);
      // 5. audit, before anything leaves
      await writeAudit(request, { ...audit, decision: "allow", reason: decision.rule });
      allowed = true;
      // 6. inject
      const upstream = deps.upstreams.compileForProxy(upstreamRow);
      const outgoing = { headers: requestHeadersForUpstream(request.headers, upstream.ownedHeaders), rawQuery: target.rawQuery };
      upstream.inject(outgoing);
      // 7. forward
      const hasBody = declaredLength > 0 || request.headers["transfer-encoding"] !== undefined;
      const response = await forward({
        url: upstreamUrl(upstream, path.path.encoded, outgoing.rawQuery),
        method: request.method,
        headers: outgoing.headers,
        body: hasBody ? limitBody(request.raw, deps.maxBodyBytes) : undefined,
        dispatcher: deps.dispatcher,
        maxBodyBytes: deps.maxBodyBytes,
      });
      try {
        await writeAudit(request, {
          ...audit,
          kind: "proxy.response",
          decision: "allow",
          status: response.statusCode,
          latencyMs: Math.round(performance.now() - startedAt),
        });
      } catch (err) {
        response.body.destroy();
        throw err;
      }
      return reply.code(response.statusCode).headers(responseHeadersForAgent(response.headers)).send(response.body);
    } catch (err) {
      if (err instanceof KeywardError && err.code === "audit_unavailable") throw err;
      const status = err instanceof KeywardError ? err.status : 500;
      const reason = err instanceof KeywardError ? (err.extra.reason ?? err.code) : "internal_error";
      await writeAudit(
        request,
        allowed
          ? { ...audit, kind: "proxy.response", decision: "allow", status, reason, latencyMs: Math.round(performance.now() - startedAt) }
          : { ...audit, decision: "deny", reason, status },
      );
      throw err;
    }
  };

  for (const url of ["/proxy/:upstream", "/proxy/:upstream/*"]) {
    app.route({ method: PROXY_METHODS, url, handler, exposeHeadRoute: false });
  }
}
