import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Dispatcher } from "undici";
import type { AuditInput } from "../audit/audit.js";
import type { AuditLog } from "../audit/log.js";
import { eventNames } from "../audit/names.js";
import type { Agents } from "../agents/agents.js";
import type { Grants } from "../grants/grants.js";
import { bearerToken } from "../http/auth-header.js";
import type { Approvals } from "../approvals/approvals.js";
import { countersFor, refusalReason, type BudgetService, type Spent } from "../budgets/budgets.js";
import type { Environments } from "../environments/environments.js";
import { KeywardError, notFound, payloadTooLarge, refused, tooManyRequests, unavailable } from "../http/errors.js";
import { loadDecisionContext } from "../policy/context.js";
import { decide } from "../policy/decide.js";
import type { RevocationService } from "../revocation/service.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import { abortWhenClientGone, collectBody, forward, limitBody, neverSent, OutgoingCall, upstreamTarget } from "./forward.js";
import { requestHeadersForUpstream, responseHeadersForAgent } from "./headers.js";
import { decisionRequest, prepareCall, targetOf } from "./prepare.js";
import { auditedOutcome, redactResponseWithRules } from "../redaction/response.js";
import { planResponseRedaction } from "../redaction/rules.js";
import { recordedOperations } from "../audit/event-text.js";
import { BROKER_ERROR_HEADER, logErrorResponse, toErrorResponse } from "../http/error-handler.js";
import { jsonRpcIds, nativeRefusal, refusalDialect, type RefusalDialect } from "./refusals.js";
import type { OutcomesOwed } from "./outcomes-owed.js";

export type ProxyDeps = {
  /** Where its events go: group commits to the database (src/audit/log.ts). */
  auditLog: Pick<AuditLog, "append" | "keep" | "admit">;
  verifyToken: TokenVerifier;
  revocations: RevocationService;
  grants: Grants;
  /** For the agent's name in its events. */
  agents: Pick<Agents, "nameOf">;
  upstreams: Upstreams;
  dispatcher: Dispatcher;
  maxBodyBytes: number;
  environments: Environments;
  approvals: Approvals;
  budgets: BudgetService;
  /** Largest body read whole to inspect its operations (GraphQL, JSON-RPC, AWS actions). */
  inspectMaxBytes: number;
  /** Forwarded calls whose outcome is not kept yet: a stop waits for them. */
  outcomesOwed: OutcomesOwed;
};

const PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * The most of a path or a reason a call's events keep. Each can carry what the agent sent (a refusal
 * quotes a JSON-RPC method or GraphQL field read from a body of up to the inspection limit; an allowed
 * call's reason names the rule each of its operations passed), and every event is spooled, hashed and
 * shipped before the next call's turn.
 */
const AUDITED_TEXT_MAX = 2000;

/** What every event of a proxied call records about the call, as far as it is known. */
type CallRecord = Required<Pick<AuditInput, "actor">> &
  { [K in "requestId" | "agentId" | "jti" | "grantId" | "upstream" | "environment" | "method" | "path" | "names"]: AuditInput[K] | undefined };

/** One event of the call: the call's record and this event's outcome, written out field by field (one shape, no spreads). */
const eventOf = (
  call: CallRecord,
  kind: "proxy" | "proxy.response",
  decision: "allow" | "deny",
  outcome: Pick<AuditInput, "reason" | "status" | "latencyMs" | "details">,
): AuditInput => ({
  kind,
  actor: call.actor,
  requestId: call.requestId,
  agentId: call.agentId,
  jti: call.jti,
  grantId: call.grantId,
  upstream: call.upstream,
  environment: call.environment,
  method: call.method,
  path: call.path,
  names: call.names,
  decision,
  reason: outcome.reason,
  status: outcome.status,
  latencyMs: outcome.latencyMs,
  details: outcome.details,
});

/**
 * `ANY /proxy/:upstream/*`: authenticate → check revocation → resolve → decide → audit → inject →
 * forward. Each step passes or throws a KeywardError; nothing is forwarded unless every step passed
 * and the allow decision is in the audit log. Every outcome, allowed or not, is audited.
 */
export async function proxyPlugin(app: FastifyInstance, deps: ProxyDeps): Promise<void> {
  // Bodies are streamed to the upstream untouched, never parsed here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));

  const auditUnavailable = () => unavailable("audit_unavailable", "audit log unavailable; refusing to forward");

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const startedAt = performance.now();
    // Denials are timed too: a slow refusal (a stalled database, a large inspected body) is worth seeing.
    const elapsedMs = () => Math.round(performance.now() - startedAt);
    // What every event of the call says, filled in as the call is resolved; each event is written out from it
    // by eventOf, in one shape (spreading this object into each event was the handler's costliest line).
    const audit: CallRecord = {
      actor: "anonymous",
      requestId: request.id,
      agentId: undefined,
      jti: undefined,
      grantId: undefined,
      upstream: undefined,
      environment: undefined,
      method: request.method,
      path: undefined,
      names: undefined,
    };
    // Set once the allow event is durable: from then on the call's record is a proxy.response event.
    let allowed = false;
    // Its outcome is owed once it is allowed, and settled once, whichever of the response's end or a failure keeps it.
    let owed = false;
    const outcomeKept = () => {
      if (!owed) return;
      owed = false;
      deps.outcomesOwed.settle();
    };
    // What the call took from its grant's budgets, given back if it fails with nothing sent upstream.
    let spent: Spent | undefined;
    let sending = false;
    // Refusals answer in the upstream's protocol once it is known (src/proxy/refusals.ts).
    const refusal = { dialect: { kind: "keyward" } as RefusalDialect, body: undefined as Buffer | undefined, bodyTouched: false };
    try {
      const parsed = targetOf(request.raw.url ?? "");
      if (!parsed.ok) throw refused(parsed.code, parsed.reason);
      const { target } = parsed;
      audit.upstream = target.upstream;
      audit.path = target.rawPath.slice(0, AUDITED_TEXT_MAX);

      // 1. authenticate
      const token = await deps.verifyToken(bearerToken(request));
      audit.actor = `agent:${token.agentId}`;
      audit.agentId = token.agentId;
      audit.jti = token.jti;
      audit.grantId = token.grantId;
      // 2. check revocation
      deps.revocations.assertNotRevoked(token);
      // Looked up once the token is known to be live (from memory nearly always): every event of the call carries them.
      audit.names = await eventNames(deps, token);
      // 3. resolve
      const upstreamRow = await deps.upstreams.findByName(target.upstream);
      if (!upstreamRow) throw notFound(`upstream ${target.upstream}`);
      const authType = (upstreamRow.authConfig as { type: string }).type;
      refusal.dialect = refusalDialect({ protocol: upstreamRow.protocol, presets: upstreamRow.presets, authType }, request.headers);
      audit.environment = upstreamRow.environment;
      // An environment is the upstream's, not the token's: its revocations are checked once it is known.
      deps.revocations.assertEnvironmentNotRevoked(token, upstreamRow.environment);
      const context = await loadDecisionContext(deps, { grantId: token.grantId, jtis: [token.jti, ...token.ancestors] }, upstreamRow);
      const { grant } = context;
      const declaredLength = Number(request.headers["content-length"] ?? 0);
      const hasBody = declaredLength > 0 || request.headers["transfer-encoding"] !== undefined;
      // 3b. prepare: the same steps the simulator takes (src/proxy/prepare.ts)
      const prepared = prepareCall({ target, method: request.method, headers: request.headers, bodyLength: declaredLength }, { grant, target: context.target, token }, deps);
      if (!prepared.ok) throw refused(prepared.code, prepared.reason);
      audit.path = prepared.path.decoded.slice(0, AUDITED_TEXT_MAX);
      // A call whose operations (or form fields) must be inspected is read whole first, within the inspection limit; the
      // bytes decided on are exactly the bytes forwarded.
      const { inspectLimit } = prepared;
      const inspectedBody =
        inspectLimit === null ? undefined : hasBody ? await collectBody(limitBody(request.raw, inspectLimit), inspectLimit) : Buffer.alloc(0);
      if (inspectLimit !== null) {
        refusal.bodyTouched = true;
        refusal.body = inspectedBody;
      }
      // 4. decide
      const call = decisionRequest(prepared, context.target, inspectedBody);
      const decision = decide(
        { agentId: token.agentId, grantId: token.grantId, upstream: token.upstream, methods: token.methods, paths: token.paths, approval: context.approval },
        grant,
        call,
      );
      if (!decision.allow) throw refused(decision.code, decision.reason);
      if (declaredLength > deps.maxBodyBytes) throw payloadTooLarge(deps.maxBodyBytes);
      // Room must be left to keep the outcome of every call already forwarded (src/audit/log.ts).
      if (!deps.auditLog.admit()) throw auditUnavailable();
      // 4b. budgets, taken in one statement across replicas, only by calls that are allowed (so the grant
      // exists), under a grant that has any (most have none: nothing to build or await)
      const { budgets } = grant!;
      if (budgets) {
        const taken = await deps.budgets.take(
          countersFor(budgets, {
            jti: token.jti,
            ancestors: token.ancestors,
            tokenExpiresAt: new Date(token.expiresAt * 1000),
            grantId: token.grantId,
            destructive: decision.destructive,
            now: Date.now(),
          }),
        );
        if (taken.refused) throw tooManyRequests(refusalReason(taken.refused), taken.refused.retryAfterSeconds);
        spent = taken.spent;
      }
      // 5. audit, before anything leaves: its group commit is the one wait the call has for the log
      try {
        await deps.auditLog.append(
          eventOf(audit, "proxy", "allow", { reason: decision.rule.slice(0, AUDITED_TEXT_MAX), details: recordedOperations(decision.operations ?? []) }),
        );
      } catch (err) {
        request.log.error({ err }, "audit write failed");
        throw auditUnavailable();
      }
      allowed = true;
      owed = true;
      deps.outcomesOwed.owe();
      // 6. inject
      const upstream = deps.upstreams.compileForProxy(upstreamRow);
      // An inspected body goes out as read; otherwise it streams, unless the credential must have it whole.
      refusal.bodyTouched = true;
      const streamedBody = hasBody && !inspectedBody ? limitBody(request.raw, deps.maxBodyBytes) : undefined;
      const signedBody = streamedBody && upstream.credential.buffersBody ? await collectBody(streamedBody, deps.maxBodyBytes) : undefined;
      const outgoing = new OutgoingCall(
        request.method,
        upstreamTarget(upstream, prepared.path.encoded, target.query),
        requestHeadersForUpstream(request.headers, upstream.credential.ownsHeader),
        hasBody ? (inspectedBody ?? signedBody) : undefined,
      );
      // A compressed answer would have to be decoded to be redacted.
      outgoing.headers["accept-encoding"] = "identity";
      // decide() allows only under a grant that exists, so grant is set here.
      await upstream.credential.prepare(outgoing, { grant: grant! });
      // 7. forward
      sending = true;
      const response = await forward({
        target: outgoing.sentTo(),
        method: request.method,
        headers: outgoing.headers,
        body: outgoing.body ?? streamedBody,
        dispatcher: upstream.dispatcher ?? deps.dispatcher,
        maxBodyBytes: deps.maxBodyBytes,
        signal: abortWhenClientGone(reply.raw),
      });
      // The call ran upstream: the agent gets its answer whatever the audit log's state. Secrets are
      // redacted on the way out (src/redaction); the response event, with how many were, is committed
      // once the body is through, before its last bytes go out (or kept until the database takes it).
      const latencyMs = elapsedMs();
      // A minted token the upstream refused (revoked early): the next call mints another. This one is not retried.
      const tokenDropped = response.statusCode === 401 && upstream.credential.rejected?.(outgoing) === true;
      const shown = await redactResponseWithRules(
        upstream.redaction(),
        planResponseRedaction(grant!, call),
        {
          method: request.method,
          status: response.statusCode,
          headers: responseHeadersForAgent(response.headers),
          body: response.body,
          transferEncoding: response.headers["transfer-encoding"],
        },
        (outcome) => {
          const { reason, details } = auditedOutcome(outcome);
          const recorded = tokenDropped ? { ...details, upstreamTokenDropped: true } : details;
          return deps.auditLog
            .keep(eventOf(audit, "proxy.response", "allow", { status: response.statusCode, latencyMs, reason, details: recorded }))
            .finally(outcomeKept);
        },
      );
      return reply.code(response.statusCode).headers(shown.headers).send(shown.body);
    } catch (err) {
      // What the client is sent (src/http/error-handler.ts: a database outage is a 503, not a 500). The event's
      // reason is the refusal's code (src/sdk/codes.ts), filterable; its text goes in details.
      const sent = toErrorResponse(err);
      const { status } = sent;
      const reason = sent.body.error.code;
      const text = sent.body.error.reason ?? sent.body.error.message;
      const outcome = { status, reason, details: { reason: text.slice(0, AUDITED_TEXT_MAX) }, latencyMs: elapsedMs() };
      if (spent && (!sending || neverSent(err))) {
        // Left counted if the database cannot take them back now: a budget may end early, never late.
        await deps.budgets.giveBack(spent).catch((giveBackErr: unknown) => request.log.warn({ err: giveBackErr }, "budget units not given back"));
      }
      // The outcome recorded is the outcome sent.
      await deps.auditLog.keep(allowed ? eventOf(audit, "proxy.response", "allow", outcome) : eventOf(audit, "proxy", "deny", outcome));
      outcomeKept();
      if (!(err instanceof KeywardError) || refusal.dialect.kind === "keyward") throw err;
      // A JSON-RPC refusal echoes the call's ids: a body not read yet is read now, within the inspection limit.
      if (refusal.dialect.kind === "jsonrpc" && !refusal.body && !refusal.bodyTouched && Number(request.headers["content-length"] ?? 0) <= deps.inspectMaxBytes) {
        refusal.body = await collectBody(limitBody(request.raw, deps.inspectMaxBytes), deps.inspectMaxBytes).catch(() => undefined);
      }
      const native = nativeRefusal(err, refusal.dialect, { requestId: request.id, jsonRpc: jsonRpcIds(refusal.body) });
      if (!native) throw err;
      logErrorResponse(request, err, { status: err.status, code: err.code }, "debug");
      return reply
        .code(err.status)
        .headers({ ...err.extra.headers, ...native.headers, [BROKER_ERROR_HEADER]: err.code })
        .type(native.contentType)
        .send(native.body);
    }
  };

  for (const url of ["/proxy/:upstream", "/proxy/:upstream/*"]) {
    app.route({ method: PROXY_METHODS, url, handler, exposeHeadRoute: false });
  }
}
