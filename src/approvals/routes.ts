import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { PrismaClient } from "@prisma/client";
import { z } from "zod";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import type { ClientAuthenticator } from "../agents/client-auth.js";
import { basicCredentials } from "../http/auth-header.js";
import { idParam } from "../http/schemas.js";
import type { Capabilities } from "../tokens/issue.js";
import type { Tokens } from "../tokens/tokens.js";
import { APPROVAL_STATUSES, type Approvals } from "./approvals.js";

export type ApprovalRouteDeps = { prisma: PrismaClient; approvals: Approvals; clientAuth: ClientAuthenticator; tokens: Tokens };

const decisionBody = z.strictObject({ note: z.string().max(1000).optional() }).optional();
const listQuery = z.strictObject({ status: z.enum(APPROVAL_STATUSES).optional() });
const noStore = { "cache-control": "no-store", pragma: "no-cache" };

/** The humans' side: list held requests, approve or deny them (admin and security keys). */
export async function approvalAdminRoutes(app: FastifyInstance, deps: ApprovalRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const approve = { permission: "approve" } as const;
  r.get("/v1/approvals", { config: approve, schema: { querystring: listQuery } }, async (req) => ({
    approvals: await deps.approvals.list(req.query.status),
  }));
  for (const verdict of ["approve", "deny"] as const) {
    r.post(`/v1/approvals/:id/${verdict}`, { config: approve, schema: { params: idParam, body: decisionBody } }, async (req) =>
      deps.approvals.decide(req.params.id, verdict, { actor: actorOf(req), requestId: req.id }, req.body?.note),
    );
  }
}

/** The agent's side: poll a held request with its client credentials; the token comes once, when approved. */
export async function approvalAgentRoutes(app: FastifyInstance, deps: ApprovalRouteDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get("/v1/approvals/:id", { schema: { params: idParam } }, async (req, reply) => {
    const { user: clientId, password: clientSecret } = basicCredentials(req);
    // A secret method never yields null: the authenticator returns the agent or throws invalid_client.
    const agent = (await deps.clientAuth.authenticate({ method: "client_secret_basic", clientId, clientSecret }, req.id))!;
    const result = await deps.approvals.collect(agent.id, req.params.id, req.id, (approval) =>
      deps.tokens.issue(agent, { grant: approval.grantId, ...(approval.capabilities as Capabilities) }, req.id, approval.id),
    );
    return reply.headers(noStore).send(result);
  });
}
