import type { Agent, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { badRequest, unauthenticated, type KeywardError } from "../http/errors.js";
import type { Agents } from "./agents.js";
import { AssertionError, assertionIssuer, CLIENT_ASSERTION_TYPE, verifyClientAssertion, type AgentJwk } from "./client-keys.js";
import { isClientId } from "./client-secret.js";

/** The form fields of client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2). */
export const clientAuthFields = z.strictObject({
  client_id: z.string().min(1).max(200).optional(),
  client_secret: z.string().min(1).max(500).optional(),
  client_assertion_type: z.literal(CLIENT_ASSERTION_TYPE).optional(),
  client_assertion: z.string().min(1).max(8000).optional(),
});
export type ClientAuthFields = z.infer<typeof clientAuthFields>;
const CLIENT_AUTH_FIELD_NAMES = new Set(Object.keys(clientAuthFields.shape));

/** Separates the client-authentication fields of a form from the request's own parameters. */
export function splitClientAuth(form: Record<string, string>): { auth: Record<string, string>; params: Record<string, string> } {
  const auth: Record<string, string> = {};
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(form)) (CLIENT_AUTH_FIELD_NAMES.has(name) ? auth : params)[name] = value;
  return { auth, params };
}

export type PresentedClient =
  | { method: "client_secret_basic" | "client_secret_post"; clientId: string; clientSecret: string }
  | { method: "private_key_jwt"; clientId: string | undefined; assertion: string }
  | { method: "none"; clientId: string | undefined };

/**
 * Which client authentication a request presents. Exactly one method may be used (RFC 6749 §2.3); a
 * `client_id` sent beside another method must name the same client.
 */
export function presentedClient(basic: { user: string; password: string } | undefined, fields: ClientAuthFields): PresentedClient {
  const { client_id: clientId, client_secret: clientSecret, client_assertion: assertion } = fields;
  const methods = [basic, clientSecret, assertion].filter((m) => m !== undefined).length;
  if (methods > 1) throw badRequest("invalid_request", "more than one client authentication method");
  if ((assertion === undefined) !== (fields.client_assertion_type === undefined)) {
    throw badRequest("invalid_request", "client_assertion and client_assertion_type come together");
  }
  if (basic) {
    if (clientId !== undefined && clientId !== basic.user) throw badRequest("invalid_request", "client_id does not match the Authorization header");
    return { method: "client_secret_basic", clientId: basic.user, clientSecret: basic.password };
  }
  if (clientSecret !== undefined) {
    if (clientId === undefined) throw badRequest("invalid_request", "client_secret needs client_id");
    return { method: "client_secret_post", clientId, clientSecret };
  }
  if (assertion !== undefined) return { method: "private_key_jwt", clientId, assertion };
  return { method: "none", clientId };
}

/** HTTP Basic credentials of an OAuth client are form-encoded before base64 (RFC 6749 §2.3.1). */
export function formDecodeBasic(basic: { user: string; password: string }): { user: string; password: string } {
  const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, " "));
  try {
    return { user: decode(basic.user), password: decode(basic.password) };
  } catch {
    throw invalidClient("malformed client credentials");
  }
}

export function invalidClient(message: string): KeywardError {
  const err = unauthenticated("invalid_client", message);
  err.extra.headers = { "www-authenticate": 'Basic realm="keyward"' };
  return err;
}

export type ClientAuthOptions = {
  /** Keyward's issuer identifier: a client assertion's only accepted `aud` (draft-ietf-oauth-rfc7523bis). */
  issuer: string;
  leewaySeconds: number;
  now?: () => Date;
};

/** Authenticates agents by client secret (current, or previous during an overlap) or by private_key_jwt. */
export class ClientAuthenticator {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly agents: Agents,
    private readonly options: ClientAuthOptions,
  ) {}

  /**
   * The authenticated agent, or null when the request presents no client authentication at all (which
   * only token exchange accepts). Every failure is audited and answered with 401 invalid_client.
   */
  async authenticate(presented: PresentedClient, requestId: string): Promise<Agent | null> {
    if (presented.method === "none") return null;
    const refuse = async (clientId: string | undefined, reason: string): Promise<never> => {
      await appendAudit(this.prisma, {
        kind: "token.refused",
        // Only something shaped like a client id is recorded: a secret pasted into the wrong field is not.
        actor: `client:${clientId === undefined ? "unknown" : isClientId(clientId) ? clientId : "invalid"}`,
        requestId,
        decision: "deny",
        reason: "invalid_client",
        details: { method: presented.method, reason },
      });
      throw invalidClient(reason);
    };

    if (presented.method !== "private_key_jwt") {
      const agent = await this.agents.authenticate(presented.clientId, presented.clientSecret, this.#now());
      return agent ?? refuse(presented.clientId, "invalid client credentials");
    }

    const clientId = presented.clientId ?? assertionIssuer(presented.assertion);
    if (!clientId) return refuse(undefined, "client assertion names no client");
    const agent = await this.agents.findByClientId(clientId);
    const keys = (agent?.jwks as AgentJwk[] | null | undefined) ?? [];
    if (!agent || keys.length === 0) return refuse(clientId, "invalid client credentials");
    let verified;
    try {
      verified = await verifyClientAssertion(presented.assertion, keys, {
        clientId,
        issuer: this.options.issuer,
        leewaySeconds: this.options.leewaySeconds,
        now: this.#now(),
      });
    } catch (err) {
      if (err instanceof AssertionError) return refuse(clientId, err.message);
      throw err;
    }
    if (!(await this.#firstUse(clientId, verified.jti, verified.rememberUntil))) {
      return refuse(clientId, "client assertion already used");
    }
    return agent;
  }

  /**
   * Records an assertion's jti; false if it was seen before. Kept in the database so a replay is refused
   * on every replica, and only until the assertion could no longer be accepted anyway.
   */
  async #firstUse(clientId: string, jti: string, rememberUntil: Date): Promise<boolean> {
    // Forgetting what has expired here keeps the table as small as the last few minutes' assertions.
    await this.prisma.usedClientAssertion.deleteMany({ where: { expiresAt: { lt: this.#now() } } });
    const { count } = await this.prisma.usedClientAssertion.createMany({
      data: [{ clientId, jti, expiresAt: rememberUntil }],
      skipDuplicates: true,
    });
    return count === 1;
  }

  #now(): Date {
    return this.options.now?.() ?? new Date();
  }
}
