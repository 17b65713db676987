import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { confirmDestructive } from "../../../src/cli/confirm.js";
import { CliError } from "../../../src/cli/connection.js";

/** A terminal (or a pipe) whose user types `answer`, and what the prompt printed. */
function terminal(answer: string | null, isTTY = true) {
  const input = Object.assign(new PassThrough(), { isTTY });
  const output = new PassThrough();
  let printed = "";
  output.on("data", (chunk: Buffer) => (printed += chunk.toString()));
  if (answer !== null) input.end(`${answer}\n`);
  return { io: { input, output }, printed: () => printed };
}

describe("confirmDestructive", () => {
  it("on a terminal, says what will happen and goes on only on y or yes", async () => {
    for (const answer of ["y", "yes", "Y", " YES "]) {
      const t = terminal(answer);
      await expect(confirmDestructive("remove agent bot and revoke every token it holds", undefined, t.io)).resolves.toBeUndefined();
      expect(t.printed()).toContain("This will remove agent bot and revoke every token it holds.");
      expect(t.printed()).toContain("--yes");
    }
  });

  it("cancels on anything else, an empty answer included", async () => {
    for (const answer of ["", "n", "no", "yess", "ok"]) {
      const t = terminal(answer);
      const refused = confirmDestructive("remove grant g", undefined, t.io);
      await expect(refused, answer).rejects.toBeInstanceOf(CliError);
      await expect(confirmDestructive("remove grant g", undefined, terminal(answer).io)).rejects.toThrow("cancelled: nothing was changed");
    }
  });

  it("asks nothing with --yes, nor when stdin is not a terminal (scripts)", async () => {
    const withYes = terminal(null);
    await confirmDestructive("revoke every token", true, withYes.io);
    expect(withYes.printed()).toBe("");
    const piped = terminal(null, false);
    await confirmDestructive("revoke every token", undefined, piped.io);
    expect(piped.printed()).toBe("");
  });
});
