import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { leadingText } from "../../src/mcp/body.js";
import { keywardMcpServer } from "../../src/mcp/server.js";
import { Keyward } from "../../src/sdk/client.js";
import { title } from "../security/cases.js";

const MAX_BODY_CHARS = 100_000;

/** An answer that never ends, 64 KiB at a time; `cancelled` once its reader lets go. */
function endlessBody() {
  const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
  const state = { sent: 0, cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      state.sent += chunk.length;
      controller.enqueue(chunk);
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { body, state };
}

describe("faults: an upstream answers an MCP tool call without end", () => {
  it(title("FLT-46"), { timeout: 15_000 }, async () => {
    const upstream = endlessBody();
    // The broker as the SDK sees it: metadata, a token, and the proxied call answered by the upstream.
    const broker: typeof fetch = async (input) => {
      const { pathname } = new URL(input instanceof Request ? input.url : String(input));
      if (pathname === "/.well-known/oauth-authorization-server") return Response.json({});
      if (pathname === "/v1/tokens") return Response.json({ access_token: "t", expires_in: 300, scope: "files:GET", jti: "j" });
      return new Response(upstream.body, { headers: { "content-type": "text/plain" } });
    };
    const keyward = await Keyward.connect({ url: "http://keyward.test", clientId: "kwc_a", clientSecret: "kws_b", fetch: broker });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await keywardMcpServer(keyward, "test").connect(serverSide);
    const client = new Client({ name: "model", version: "1" });
    await client.connect(clientSide);
    try {
      await client.callTool({ name: "request_token", arguments: { grant: "files" } });
      const result = (await client.callTool({ name: "call_upstream", arguments: { upstream: "files", path: "/v1/logs" } })) as CallToolResult;
      const answer = JSON.parse((result.content[0] as { text: string }).text);
      expect(answer).toEqual({ status: 200, contentType: "text/plain", body: "x".repeat(MAX_BODY_CHARS), truncated: true });
      // Read no further than the cut, and let go of the rest.
      expect(upstream.state.cancelled).toBe(true);
      expect(upstream.state.sent).toBeLessThan(4 * MAX_BODY_CHARS);
    } finally {
      await client.close();
    }
  });
});

describe("leadingText", () => {
  const streamOf = (...parts: (string | Uint8Array)[]) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(typeof part === "string" ? new TextEncoder().encode(part) : part);
        controller.close();
      },
    });

  it.each<[string, (string | Uint8Array)[], number, { text: string; truncated: boolean }]>([
    ["no body at all", [], 5, { text: "", truncated: false }],
    ["a body within the limit", ["ab", "c"], 5, { text: "abc", truncated: false }],
    ["exactly the limit", ["abcde"], 5, { text: "abcde", truncated: false }],
    ["a body over the limit", ["abc", "def"], 5, { text: "abcde", truncated: true }],
    ["a character split across chunks", [new Uint8Array([0xc3]), new Uint8Array([0xa9, 0x21])], 5, { text: "é!", truncated: false }],
    ["a byte-order mark, dropped as Response.text() drops it", ["\ufeffok"], 5, { text: "ok", truncated: false }],
  ])("%s", async (_name, parts, max, expected) => {
    await expect(leadingText(parts.length === 0 ? null : streamOf(...parts), max)).resolves.toEqual(expected);
  });
});
