import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Agent } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { ClientAuthenticator } from "../agents/client-auth.js";
import { basicCredentials } from "../http/auth-header.js";
import { KeywardError } from "../http/errors.js";
import { authorizationServerMetadata } from "../oauth/documents.js";
import { jwks, type SigningKeys } from "../signing-keys/signing-keys.js";
import { tokenRequestBody, type Tokens } from "./tokens.js";

declare module "fastify" {
  interface FastifyRequest {
    agent?: Agent;
  }
}

export type TokenRouteDeps = {
  clientAuth: ClientAuthenticator;
  tokens: Tokens;
  signingKeys: SigningKeys;
  claims: { issuer: string; audience: string };
};

/** Agent-facing: `POST /v1/tokens` (client credentials in HTTP Basic), the public key set, the metadata. */
export async function tokenRoutes(app: FastifyInstance, deps: TokenRouteDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();

  // The client is authenticated before the body is even parsed, so strangers learn nothing from validation.
  const authenticateClient = async (req: FastifyRequest) => {
    const { user: clientId, password: clientSecret } = basicCredentials(req);
    // A secret method never yields null: the authenticator returns the agent or throws invalid_client.
    req.agent = (await deps.clientAuth.authenticate({ method: "client_secret_basic", clientId, clientSecret }, req.id))!;
  };

  r.post("/v1/tokens", { onRequest: authenticateClient, schema: { body: tokenRequestBody }, config: { issuesTokens: true } }, async (req, reply) => {
    reply.headers({ "cache-control": "no-store", pragma: "no-cache" });
    try {
      return reply.send(await deps.tokens.issue(req.agent!, req.body, req.id));
    } catch (err) {
      // Held for a human (src/approvals): the agent polls GET /v1/approvals/:id, which hands out the token once approved.
      if (err instanceof KeywardError && err.code === "approval_required") {
        return reply.code(202).send({ status: "pending", ...(err.extra.details as { approvalId: string; expiresAt: string }) });
      }
      throw err;
    }
  });

  r.get("/.well-known/jwks.json", async (_req, reply) =>
    reply.header("cache-control", "public, max-age=60").send(jwks(deps.signingKeys.current())),
  );

  r.get("/.well-known/oauth-authorization-server", async (_req, reply) =>
    reply.header("cache-control", "public, max-age=300").send(authorizationServerMetadata(deps.claims.issuer)),
  );
}
