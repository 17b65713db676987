import type { FastifyInstance, RouteOptions } from "fastify";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import { jsonSchemaTransform } from "fastify-type-provider-zod";
import { ROLES, roleMay, type Permission } from "../admin/keys.js";

/** Where the browsable reference lives; its own routes are not part of the API and are hidden. */
export const DOCS_PREFIX = "/docs";

const SECURITY_SCHEMES = {
  adminKey: { type: "http", scheme: "bearer", description: "An admin key (`kwa_…`); each route names the permission it needs." },
  agentClient: { type: "http", scheme: "basic", description: "An agent's client id and client secret." },
  agentToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A token from POST /v1/tokens or /oauth2/token." },
} as const;
type Scheme = keyof typeof SECURITY_SCHEMES;

/**
 * How a route authenticates. Admin routes declare their permission (src/admin/auth.ts), so they are
 * recognised generically; the few agent-facing routes are named here. OAuth endpoints authenticate
 * clients in several ways (docs/tokens.md) and are described by /.well-known/oauth-authorization-server.
 */
function authOf(route: RouteOptions): { schemes: Scheme[]; permission?: Permission } | null {
  const permission = route.config?.permission;
  // Introspection also takes an agent's client authentication, for its own tokens.
  if (permission && route.url === "/oauth2/introspect") return { schemes: ["adminKey", "agentClient"], permission };
  if (permission) return { schemes: ["adminKey"], permission };
  if (route.url.startsWith("/proxy/")) return { schemes: ["agentToken"] };
  if (route.url === "/v1/tokens" || (route.url === "/v1/approvals/:id" && route.method === "GET")) return { schemes: ["agentClient"] };
  return null;
}

/** Groups operations by resource: /v1/<resource>/…, /proxy, /oauth2 and /.well-known, the rest. */
function tagOf(url: string): string {
  const v1 = /^\/v1\/([^/]+)/.exec(url);
  if (v1) return v1[1]!;
  if (url.startsWith("/proxy/")) return "proxy";
  if (url.startsWith("/oauth2/") || url.startsWith("/.well-known/")) return "oauth";
  return "operations";
}

/**
 * OpenAPI 3.1 generated from the zod schemas the routes validate with (so the document cannot drift from
 * what is enforced). Registered on the root before any route, since @fastify/swagger collects routes as
 * they are added, in every scope below the one it is registered in.
 */
export async function collectOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Keyward",
        version: "1",
        description:
          "Credential broker for AI agents: short-lived scoped tokens, checked proxying with the real key injected, " +
          "revocation and an audit log. Errors have the shape `{ error: { code, message, reason?, details? } }`.",
      },
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    transform: (document) => {
      const { schema, url } = jsonSchemaTransform(document);
      if (schema?.hide) return { schema, url };
      const auth = authOf(document.route);
      const permitted = auth?.permission && ROLES.filter((role) => roleMay(role, auth.permission!));
      return {
        schema: {
          ...schema,
          tags: [tagOf(url)],
          ...(auth && { security: auth.schemes.map((scheme) => ({ [scheme]: [] })) }),
          ...(permitted && { description: `Needs an admin key whose role may \`${auth.permission}\` (${permitted.join(", ")}).` }),
        },
        // Fastify's wildcard becomes a named path parameter: the upstream path, forwarded as is.
        url: url.replace(/\*$/, ":path"),
      };
    },
  });
}

/** The collected document at /openapi.json, with a browsable reference at /docs. */
export async function openApiRoutes(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true });
  app.get("/openapi.json", { schema: { summary: "This document (OpenAPI 3.1)" } }, async () => app.swagger());
}
