import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../../src/cli/program.js";

/** Every command a user can run: the leaves of the tree, by their full names. */
function leaves(command: Command, path: string[] = []): [string, Command][] {
  if (command.commands.length === 0) return [[path.join(" "), command]];
  return command.commands.flatMap((sub) => leaves(sub, [...path, sub.name()]));
}

/** What `keyward … --help` prints, text added after the usage included. */
function helpOf(command: Command): string {
  let text = "";
  command.configureOutput({ writeOut: (s) => void (text += s), writeErr: (s) => void (text += s) });
  command.outputHelp();
  return text;
}

describe("keyward --help", () => {
  const commands = leaves(buildProgram({ HOME: "/home/someone" }));

  it("covers every command the issue names", () => {
    const names = commands.map(([name]) => name);
    for (const name of ["serve", "migrate", "admin-key create", "upstream add", "upstream list", "upstream set-secret", "upstream rm",
      "agent add", "agent list", "agent rm", "grant add", "grant list", "grant show", "grant rm", "token issue", "revoke",
      "audit tail", "audit search", "audit verify", "audit export", "backup", "restore"]) {
      expect(names).toContain(name);
    }
  });

  it.each(commands.map(([name, command]) => [name, command] as const))("%s has a description and examples of its own", (name, command) => {
    expect(command.description().length).toBeGreaterThan(10);
    const help = helpOf(command);
    expect(help).toMatch(new RegExp(`Examples:\\n {2}\\$ .*keyward ${name}\\b`));
  });
});
