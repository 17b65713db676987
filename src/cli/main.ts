// `keyward`: the operator's and the agent's command line (package.json `bin`, through bin/keyward.js).
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { ConfigError } from "../config/config.js";
import { RestoreRefused } from "../db/backup.js";
import { KeywardApiError } from "../sdk/errors.js";
import { adminKeyCommands } from "./commands/admin-keys.js";
import { agentCommands } from "./commands/agents.js";
import { auditCommands } from "./commands/audit.js";
import { databaseCommands } from "./commands/database.js";
import { grantCommands } from "./commands/grants.js";
import { mcpCommand } from "./commands/mcp.js";
import { revocationCommands } from "./commands/revoke.js";
import { tokenCommands } from "./commands/token.js";
import { upstreamCommands } from "./commands/upstreams.js";
import { CliError, configPath } from "./connection.js";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("keyward")
  .description("Keyward: a credential broker for AI agents")
  .version(version)
  .option("--json", "print results as JSON, for scripts")
  .showHelpAfterError("(run with --help for usage)")
  .addHelpText(
    "after",
    `
Commands that manage a running broker use KEYWARD_URL (default http://127.0.0.1:8080) and
KEYWARD_ADMIN_KEY, or "url" and "adminKey" in ${configPath(process.env)}.
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

/** A file that is missing, exists already, cannot be read…: the user's to fix, like a CliError. */
const isSystemError = (err: unknown): err is NodeJS.ErrnoException =>
  err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === "string";

/** Problems the user can act on are one line on stderr (JSON with --json); anything else is a bug and keeps its stack. */
function report(err: unknown): void {
  const json = program.opts<{ json?: boolean }>().json === true;
  if (err instanceof KeywardApiError) {
    const { code, message, details } = err;
    if (json) process.stderr.write(JSON.stringify({ error: { code, message, details } }) + "\n");
    else {
      process.stderr.write(`keyward: ${message} (${code})\n`);
      if (Array.isArray(details)) for (const d of details as { path?: string; message?: string }[]) process.stderr.write(`  ${d.path ?? ""}: ${d.message ?? ""}\n`);
    }
  } else if (err instanceof CliError || err instanceof ConfigError || err instanceof RestoreRefused || isSystemError(err)) {
    process.stderr.write(json ? JSON.stringify({ error: { code: "refused", message: err.message } }) + "\n" : `keyward: ${err.message}\n`);
  } else {
    process.stderr.write(`keyward: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exitCode = 1;
}

await program.parseAsync(process.argv).catch(report);
