import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CLI = join(process.cwd(), "bin/keyward.js");

export type CliResult = { code: number | null; stdout: string; stderr: string };

/** A HOME of its own, so no test reads the real ~/.config/keyward. */
export const emptyHome = () => mkdtempSync(join(tmpdir(), "keyward-home-"));

/**
 * Runs `keyward <args>` as a user would: its own process, through the package's bin shim, stdout a
 * pipe (no TTY). `input` is written to stdin, which is then closed.
 */
export function runCli(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return finished(
    spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: options.env?.HOME ?? emptyHome(), ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    }),
    options.input,
  );
}

/** A word the shell reads back exactly as given. */
const shellQuoted = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/**
 * Runs `keyward <args>` on a terminal, as a person at a keyboard would: util-linux `script` gives it a
 * pseudo-terminal (stdin, stdout and stderr all the TTY), and `typed` is what they type. The output
 * holds both streams, with the terminal's echo of what was typed.
 */
export function runCliOnTerminal(args: string[], options: { env?: Record<string, string>; typed?: string } = {}): Promise<CliResult> {
  const command = [process.execPath, CLI, ...args].map(shellQuoted).join(" ");
  return finished(
    spawn("script", ["--quiet", "--return", "--command", command, "/dev/null"], {
      // NO_COLOR: the text, without the escapes a terminal gets.
      env: { PATH: process.env.PATH ?? "", HOME: options.env?.HOME ?? emptyHome(), NO_COLOR: "1", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    }),
    options.typed,
  );
}

/**
 * As runCliOnTerminal, but `typed` is typed only once `prompt` is on the screen, as a person reads a prompt
 * before answering it: what the terminal then shows of it (its echo, or none) is in the output.
 */
export function runCliOnTerminalAnswering(
  args: string[],
  options: { env?: Record<string, string>; prompt: string; typed: string; /** a shell command run on the terminal after it */ then?: string },
): Promise<CliResult> {
  // With `then`, the shell outlives a Ctrl-C sent to the command (the whole foreground group gets SIGINT).
  const cli = [process.execPath, CLI, ...args].map(shellQuoted).join(" ");
  const command = options.then ? `trap true INT; ${cli}; ${options.then}` : cli;
  const child = spawn("script", ["--quiet", "--return", "--command", command, "/dev/null"], {
    env: { PATH: process.env.PATH ?? "", HOME: options.env?.HOME ?? emptyHome(), NO_COLOR: "1", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let seen = "";
  const answer = (chunk: Buffer) => {
    seen += chunk.toString("utf8");
    if (!seen.includes(options.prompt)) return;
    child.stdout!.off("data", answer);
    // The terminal has its settings from before the prompt was written: give the command a moment to read.
    setTimeout(() => child.stdin!.end(options.typed), 200);
  };
  child.stdout!.on("data", answer);
  return finished(child, null);
}

function finished(child: ChildProcess, input: string | undefined | null): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c) => (stdout += c));
  child.stderr!.on("data", (c) => (stderr += c));
  if (input !== null) child.stdin!.end(input ?? "");
  // A hung command must not outlive the test run.
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** Runs it and insists on success: its stdout. */
export async function cli(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
  const result = await runCli(args, options);
  if (result.code !== 0) throw new Error(`keyward ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}
