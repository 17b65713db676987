// `keyward`: the operator's and the agent's command line (package.json `bin`, through bin/keyward.js).
import { ConfigError } from "../config/config.js";
import { DatabaseUnreachable, EmbeddedDatabaseError } from "../db/errors.js";
import { RestoreRefused } from "../db/restore-refused.js";
import { UnsafePathError } from "../util/private-path.js";
import { KeywardApiError } from "../sdk/errors.js";
import { CliError } from "./connection.js";
import { buildProgram } from "./program.js";

const program = buildProgram();

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
  } else if (err instanceof CliError || err instanceof ConfigError || err instanceof RestoreRefused || err instanceof UnsafePathError || isSystemError(err)) {
    process.stderr.write(json ? JSON.stringify({ error: { code: "refused", message: err.message } }) + "\n" : `keyward: ${err.message}\n`);
  } else if (err instanceof DatabaseUnreachable || err instanceof EmbeddedDatabaseError) {
    // Written for the broker's supervisor ("exiting at once so that the supervisor can retry"): the first clause is the CLI's.
    const message = err.message.replace(/: exiting at once so that the supervisor can retry .*$/, "");
    process.stderr.write(json ? JSON.stringify({ error: { code: "database_unavailable", message } }) + "\n" : `keyward: ${message}\n`);
  } else {
    process.stderr.write(`keyward: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exitCode = 1;
}

await program.parseAsync(process.argv).catch(report);
