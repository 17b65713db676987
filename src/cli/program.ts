// The `keyward` command tree, apart from running it (src/cli/main.ts), so that tests can read every
// command's help without a process per command.
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { adminKeyCommands } from "./commands/admin-keys.js";
import { agentCommands } from "./commands/agents.js";
import { auditCommands } from "./commands/audit.js";
import { databaseCommands } from "./commands/database.js";
import { grantCommands } from "./commands/grants.js";
import { mcpCommand } from "./commands/mcp.js";
import { revocationCommands } from "./commands/revoke.js";
import { runCommand } from "./commands/run.js";
import { tokenCommands } from "./commands/token.js";
import { upstreamCommands } from "./commands/upstreams.js";
import { configPath } from "./connection.js";
import { projectPath } from "../util/project-root.js";

const { version } = JSON.parse(readFileSync(projectPath("package.json"), "utf8")) as { version: string };

export function buildProgram(env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command("keyward")
    .description("Keyward: a credential broker for AI agents")
    .version(version)
    .option("--json", "print results as JSON, for scripts")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      `
Commands that manage a running broker use KEYWARD_URL (default http://127.0.0.1:8080) and
KEYWARD_ADMIN_KEY, or "url" and "adminKey" in ${configPath(env)}.
serve, migrate, backup, restore and rotate-master-key work on the database directly (DATABASE_URL or
KEYWARD_DATA_DIR), as the broker does. Agent commands (token issue, mcp) use KEYWARD_CLIENT_ID and
KEYWARD_CLIENT_SECRET.

Examples:
  $ keyward agent add deploy-bot
  $ keyward grant add deploy-staging --upstream hosting-staging --agent deploy-bot --method GET --path '/v1/**'
  $ keyward audit tail -f
  $ keyward revoke --agent deploy-bot --reason 'task finished'`,
    );

  databaseCommands(program);
  adminKeyCommands(program);
  upstreamCommands(program);
  agentCommands(program);
  grantCommands(program);
  tokenCommands(program);
  revocationCommands(program);
  auditCommands(program);
  mcpCommand(program, version);
  runCommand(program);
  return program;
}
