import type { Command } from "commander";
import { AdminApi } from "./connection.js";
import { outputFor, type Output } from "./output.js";

/** What every command works with: how to show results, the environment, and (when needed) the admin API. */
export type Context = { out: Output; env: NodeJS.ProcessEnv; admin(): AdminApi };

export function contextOf(command: Command): Context {
  const { json } = command.optsWithGlobals<{ json?: boolean }>();
  let admin: AdminApi | undefined;
  return { out: outputFor(json === true), env: process.env, admin: () => (admin ??= new AdminApi(process.env)) };
}

/** `--x a --x b` → ["a", "b"]. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Examples appended to a command's help. */
export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;
