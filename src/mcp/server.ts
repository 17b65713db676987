import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { HTTP_METHODS } from "../policy/decide.js";
import { ERROR_CODES, isErrorCode } from "../sdk/codes.js";
import { KeywardApiError, NeedsApproval } from "../sdk/errors.js";
import type { Keyward } from "../sdk/client.js";
import { leadingText } from "./body.js";

/** Upstream answers longer than this are cut: a model's context is no place for megabytes. */
const MAX_BODY_CHARS = 100_000;

const result = (value: unknown, isError = false): CallToolResult => ({
  content: [{ type: "text", text: JSON.stringify(value, null, 2) }],
  ...(isError && { isError: true }),
});

/** The broker's refusals are answers the agent should read (why it was denied), not crashes. */
function refusal(err: unknown): CallToolResult {
  if (err instanceof NeedsApproval) {
    return result({ status: "pending_approval", approvalId: err.approvalId, expiresAt: err.expiresAt, next: "a human must approve; call request_token again with the same arguments to check" });
  }
  if (err instanceof KeywardApiError) {
    // The code is the catalogue's (docs/errors.md): its meaning tells the model what kind of refusal it is.
    const meaning = isErrorCode(err.code) ? ERROR_CODES[err.code].meaning : undefined;
    return result({ error: err.name, code: err.code, message: err.message, ...(meaning && { meaning }) }, true);
  }
  throw err;
}

/**
 * Keyward as an MCP server for an agent (`keyward mcp`): `request_token` obtains a scoped token for one
 * of the agent's grants and `call_upstream` calls through the proxy with it. The token stays in this
 * process: the model sees what it may do and the upstream's answers, never a key or a token.
 */
export function keywardMcpServer(keyward: Keyward, version: string): McpServer {
  const server = new McpServer({ name: "keyward", version });

  server.registerTool(
    "request_token",
    {
      title: "Request scoped access",
      description:
        "Obtain short-lived access under one of your Keyward grants, optionally narrower (fewer methods, narrower paths, shorter life). " +
        "Then use call_upstream with the upstream it names. Some grants need a human's approval first.",
      inputSchema: {
        grant: z.string().min(1).describe("the grant's name, e.g. deploy-staging"),
        methods: z.array(z.enum(HTTP_METHODS)).min(1).optional().describe("only these HTTP methods"),
        paths: z.array(z.string()).min(1).optional().describe("only these path patterns, e.g. /v1/projects/*"),
        ttlSeconds: z.number().int().positive().optional().describe("a shorter life than the grant's default"),
      },
    },
    async (request) => {
      try {
        const token = await keyward.token(request);
        return result({ status: "granted", upstream: token.upstream, scope: token.scope, expiresAt: token.expiresAt, jti: token.jti });
      } catch (err) {
        return refusal(err);
      }
    },
  );

  server.registerTool(
    "call_upstream",
    {
      title: "Call an upstream API through Keyward",
      description:
        "Send an HTTP request to an upstream API through Keyward, which checks it against your grant and adds the real credential. " +
        "Request access with request_token first. Returns the upstream's status, content type and body.",
      inputSchema: {
        upstream: z.string().min(1).describe("the upstream's name, as request_token returned it"),
        method: z.enum(HTTP_METHODS).default("GET"),
        path: z.string().startsWith("/").describe("the path on the upstream, with any query string, e.g. /v1/projects?limit=10"),
        headers: z.record(z.string(), z.string()).optional(),
        body: z.string().optional().describe("the request body, e.g. JSON text (set a content-type header)"),
      },
    },
    async ({ upstream, method, path, headers, body }) => {
      try {
        const response = await keyward.fetch(upstream, path, { method, headers, body });
        const { text, truncated } = await leadingText(response.body, MAX_BODY_CHARS);
        return result({
          status: response.status,
          contentType: response.headers.get("content-type"),
          body: text,
          ...(truncated && { truncated: true }),
        });
      } catch (err) {
        return refusal(err);
      }
    },
  );

  return server;
}
