import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Agent } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { appendAudit } from "../audit/audit.js";
import type { Agents } from "../agents/agents.js";
import { basicCredentials } from "../http/auth-header.js";
import { unauthenticated } from "../http/errors.js";
import type { PrismaClient } from "@prisma/client";
import { jwks, type KeySet } from "./signing-keys.js";
import { tokenRequestBody, type Tokens } from "./tokens.js";

declare module "fastify" {
  interface FastifyRequest {
    agent?: Agent;
  }
}

export type TokenRouteDeps = { prisma: PrismaClient; agents: Agents; tokens: Tokens; keys: () => KeySet };

/** Agent-facing: `POST /v1/tokens` (client credentials in HTTP Basic) and the public key set. */
export async function tokenRoutes(app: FastifyInstance, deps: TokenRouteDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();

  // The client is authenticated before the body is even parsed, so strangers learn nothing from validation.
  const authenticateClient = async (req: FastifyRequest) => {
    const { user: clientId, password: clientSecret } = basicCredentials(req);
    const agent = await deps.agents.authenticate(clientId, clientSecret);
    if (!agent) {
      await appendAudit(deps.prisma, {
        kind: "token.refused",
        actor: `client:${clientId.slice(0, 100)}`,
        requestId: req.id,
        decision: "deny",
        reason: "invalid client credentials",
      });
      const err = unauthenticated("invalid_client", "invalid client credentials");
      err.extra.headers = { "www-authenticate": 'Basic realm="keyward"' };
      throw err;
    }
    req.agent = agent;
  };

  r.post("/v1/tokens", { onRequest: authenticateClient, schema: { body: tokenRequestBody } }, async (req, reply) => {
    const token = await deps.tokens.issue(req.agent!, req.body, req.id);
    return reply.headers({ "cache-control": "no-store", pragma: "no-cache" }).send(token);
  });

  r.get("/.well-known/jwks.json", async (_req, reply) =>
    reply.header("cache-control", "public, max-age=60").send(jwks(deps.keys())),
  );
}
