import type { Command } from "commander";
import { contextOf, examples } from "../context.js";
import { emit, fields, note, table } from "../output.js";

type AdminKey = { id: string; name: string; role: string; createdAt: string; revokedAt: string | null };

export function adminKeyCommands(program: Command): void {
  const adminKey = program.command("admin-key").description("admin keys (roles: admin, security, auditor)");

  adminKey
    .command("create")
    .description("create an admin key; it is shown once")
    .requiredOption("--name <name>", "who or what holds it")
    .option("--role <role>", "admin, security (revoke, approve, read the audit log) or auditor (read the audit log, /metrics)", "admin")
    .addHelpText("after", examples("keyward admin-key create --name alice --role security", "keyward admin-key create --name prometheus --role auditor --json"))
    .action(async (options: { name: string; role: string }, command: Command) => {
      const { out, admin } = contextOf(command);
      const created = await admin().json<{ id: string; key: string; name: string; role: string }>("POST", "/v1/admin-keys", { json: options });
      emit(out, created, () => fields(out, created, ["id", "name", "role", "key"]));
      note(out, "The key is shown only this once: store it now.");
    });

  adminKey
    .command("list")
    .description("list admin keys (never the keys themselves)")
    .addHelpText("after", examples("keyward admin-key list", "keyward admin-key list --json | jq -r '.adminKeys[] | select(.revokedAt == null) | .name'"))
    .action(async (_options, command: Command) => {
      const { out, admin } = contextOf(command);
      const answer = await admin().json<{ adminKeys: AdminKey[] }>("GET", "/v1/admin-keys");
      emit(out, answer, () => table(out, answer.adminKeys, ["id", "name", "role", "createdAt", "revokedAt"]));
    });
}
