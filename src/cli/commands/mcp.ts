import type { Command } from "commander";
import { Keyward } from "../../sdk/client.js";
import { agentCredentials } from "../connection.js";
import { examples } from "../context.js";

export function mcpCommand(program: Command, version: string): void {
  program
    .command("mcp")
    .description("serve MCP over stdio for an agent: tools request_token and call_upstream (credentials from KEYWARD_CLIENT_ID and KEYWARD_CLIENT_SECRET)")
    .option("--client-id <id>", "the agent's client id (KEYWARD_CLIENT_ID)")
    .addHelpText(
      "after",
      "\nIn an MCP client's configuration:\n" +
        '  { "command": "keyward", "args": ["mcp"], "env": { "KEYWARD_URL": "https://keyward.internal", "KEYWARD_CLIENT_ID": "kwc_…", "KEYWARD_CLIENT_SECRET": "kws_…" } }\n' +
        examples("KEYWARD_CLIENT_ID=kwc_… KEYWARD_CLIENT_SECRET=kws_… keyward mcp"),
    )
    .action(async (options: { clientId?: string }) => {
      // stdin and stdout carry the protocol: the secret comes from the environment only.
      const keyward = await Keyward.connect(await agentCredentials(process.env, options.clientId, false));
      // Loaded here, not with the CLI: the MCP SDK takes most of a second to load, which no other command needs.
      const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
      const { keywardMcpServer } = await import("../../mcp/server.js");
      await keywardMcpServer(keyward, version).connect(new StdioServerTransport());
    });
}
