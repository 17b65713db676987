import { createInterface } from "node:readline/promises";
import { CliError } from "./connection.js";

export type ConfirmIo = {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream;
};

/**
 * Asks before a destructive command, saying what it will remove and revoke. Only on a terminal: a
 * script (stdin not a TTY) is not stopped by a prompt nobody can answer, and `--yes` skips it anywhere.
 * Anything but `y` or `yes` cancels, with a non-zero exit. A consequence that takes looking up (the
 * live tokens it cuts off) is a function, called only when there is someone to ask.
 */
export async function confirmDestructive(
  consequence: string | (() => Promise<string>),
  yes: boolean | undefined,
  io: ConfirmIo = { input: process.stdin, output: process.stderr },
): Promise<void> {
  if (yes || io.input.isTTY !== true) return;
  const text = typeof consequence === "string" ? consequence : await consequence();
  const rl = createInterface({ input: io.input, output: io.output, terminal: false });
  try {
    const answer = await rl.question(`This will ${text}.\nContinue? [y/N] (--yes skips this question) `);
    if (!/^\s*y(es)?\s*$/i.test(answer)) throw new CliError("cancelled: nothing was changed");
  } finally {
    rl.close();
  }
}
