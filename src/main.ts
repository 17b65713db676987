import { pathToFileURL } from "node:url";
import { ConfigError, loadConfig } from "./config/config.js";
import { EXIT_DATABASE_UNREACHABLE } from "./db/database.js";
import { DatabaseUnreachable } from "./db/errors.js";
import { createKeyward, type Keyward } from "./keyward.js";
import { projectPath } from "./util/project-root.js";
import type * as MallocTunables from "../bin/malloc-tunables.js";
import type * as V8Flags from "../bin/v8-flags.js";

// bin/v8-flags.js and bin/malloc-tunables.js are outside src/ (`npm start` runs them before node starts):
// imported from the project's directory, which a relative import from build/src/ would miss.
const { brokerV8Flags } = (await import(pathToFileURL(projectPath("bin", "v8-flags.js")).href)) as typeof V8Flags;
const { runsOnGlibc } = (await import(pathToFileURL(projectPath("bin", "malloc-tunables.js")).href)) as typeof MallocTunables;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyward: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  // Heard from the start: a stop while the broker starts (initdb and migrations take seconds on a first run)
  // must stop the embedded PostgreSQL too, which runs in its own process group and would outlive the broker.
  const startup = new AbortController();
  let started: Keyward | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (!started) {
      startup.abort(new Error(`stopped by ${signal} during start-up`));
      return;
    }
    started.app.log.info({ signal }, "shutting down: finishing in-flight requests");
    try {
      await started.close();
      process.exit(0);
    } catch (err) {
      started.app.log.error({ err }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));

  let keyward: Keyward;
  try {
    keyward = await createKeyward(config, {
      // Fail closed, then let the supervisor restart the broker with a new server: nothing acknowledged is
      // lost, since every acknowledged event was committed.
      onDatabaseServerExit: (description) => {
        process.stderr.write(`keyward: ${description}; exiting\n`);
        process.exit(1);
      },
      startupAborted: startup.signal,
      // Printed once, outside the structured log, and never stored in plain text.
      onAdminKeyGenerated: (key) =>
        process.stdout.write(`\nKeyward: first start. Your admin key (shown only this once; only its hash is stored):\n\n  ${key}\n\n`),
    });
  } catch (err) {
    // What failed was what the stop cut short.
    throw startup.signal.aborted ? startup.signal.reason : err;
  }
  const { app } = keyward;
  const missingV8Flags = brokerV8Flags().filter((flag) => !process.execArgv.includes(flag));
  if (missingV8Flags.length > 0) {
    app.log.warn(
      { missing: missingV8Flags },
      "node was started without the V8 flags Keyward runs with on this Node (`npm start` and the Docker image pass them; see bin/v8-flags.js): the heap grows up to ~80 MiB larger under load, and on Node 24 streamed bodies cost more CPU",
    );
  }
  if (process.env.GLIBC_TUNABLES === undefined && runsOnGlibc()) {
    app.log.warn(
      "GLIBC_TUNABLES is not set: `npm start` and the Docker image give glibc's malloc the settings of bin/malloc-tunables.js; without them the broker holds 20-50 MiB more memory under load",
    );
  }
  if (keyward.generatedMasterKeyPath) {
    app.log.warn(
      { path: keyward.generatedMasterKeyPath },
      "KEYWARD_MASTER_KEY is not set: generated a master key beside the data it protects. " +
        "Set KEYWARD_MASTER_KEY (32 bytes, base64) and keep it elsewhere for anything but local use.",
    );
  }

  if (startup.signal.aborted) {
    // Stopped after the last step that used the database: nothing failed, but the broker must not serve.
    await keyward.close();
    throw startup.signal.reason;
  }
  started = keyward;

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // Not left behind: the embedded server (and the data dir's lock) go with this broker.
    await keyward.close().catch(() => {});
    throw err;
  }
}

main().catch((err) => {
  process.stderr.write(`keyward: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof DatabaseUnreachable ? EXIT_DATABASE_UNREACHABLE : 1);
});
