import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { CLI, emptyHome } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/** A tool's JSON answer, and whether it was an error. */
async function call(client: Client, name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const first = result.content[0] as { type: "text"; text: string };
  return { isError: result.isError === true, value: JSON.parse(first.text), text: first.text };
}

// `keyward mcp` as an MCP client starts it: a subprocess speaking the protocol over stdio.
describe("keyward mcp", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let client: Client;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    upstream = await startUpstream();
    await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: "real-staging-key" });
    const agent = await createAgent(broker, "mcp-agent");
    await createGrant(broker, { name: "deploy-staging", agents: [agent.id], upstream: "hosting-staging", methods: ["GET", "POST"], paths: ["/v1/**"], deny: [{ method: "DELETE" }] });
    client = new Client({ name: "test-agent", version: "1.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "mcp"],
        env: { PATH: process.env.PATH ?? "", HOME: emptyHome(), KEYWARD_URL: broker.url, KEYWARD_CLIENT_ID: agent.clientId, KEYWARD_CLIENT_SECRET: agent.clientSecret },
        stderr: "pipe",
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("lists request_token and call_upstream with their input schemas", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["call_upstream", "request_token"]);
    const callUpstream = tools.find((t) => t.name === "call_upstream")!;
    expect(Object.keys(callUpstream.inputSchema.properties ?? {})).toEqual(["upstream", "method", "path", "headers", "body"]);
  });

  it("gets scoped access and calls through it; the model never sees a key or a token", async () => {
    const before = await call(client, "call_upstream", { upstream: "hosting-staging", path: "/v1/projects" });
    expect(before).toMatchObject({ isError: true, value: { code: "no_token" } });

    const granted = await call(client, "request_token", { grant: "deploy-staging", methods: ["GET", "POST"] });
    expect(granted).toMatchObject({ isError: false, value: { status: "granted", upstream: "hosting-staging", scope: "hosting-staging:GET hosting-staging:POST" } });
    expect(granted.text).not.toMatch(/eyJ/); // no JWT in what the model reads

    const called = await call(client, "call_upstream", {
      upstream: "hosting-staging",
      method: "POST",
      path: "/v1/projects?team=a",
      headers: { "content-type": "application/json" },
      body: '{"name":"svc"}',
    });
    expect(called).toMatchObject({ isError: false, value: { status: 200, contentType: "application/json" } });
    expect(JSON.parse(called.value.body)).toEqual({ ok: true, method: "POST", url: "/v1/projects?team=a" });
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer real-staging-key");
    expect(upstream.received.at(-1)!.body).toBe('{"name":"svc"}');
  });

  it("reports the broker's refusals as tool errors the agent can read", async () => {
    const denied = await call(client, "call_upstream", { upstream: "hosting-staging", method: "DELETE", path: "/v1/volumes/vol-1" });
    expect(denied).toMatchObject({ isError: true, value: { error: "Denied", code: "method_not_granted", message: expect.stringMatching(/DELETE/), meaning: expect.stringContaining("HTTP method") } });
    const widening = await call(client, "request_token", { grant: "deploy-staging", methods: ["DELETE"] });
    expect(widening).toMatchObject({ isError: true, value: { error: "Denied", code: "widening_refused" } });
    expect(upstream.received.some((r) => r.method === "DELETE")).toBe(false);
  });
});
