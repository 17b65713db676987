import type { Command } from "commander";
import { contextOf, examples } from "../context.js";
import { emit, fields, note, table } from "../output.js";
import { confirmDestructive } from "../confirm.js";
import { liveTokensCut } from "../consequences.js";
import { idOf } from "../resolve.js";

type AgentView = { id: string; name: string; description: string | null; clientId: string; createdAt: string };

export function agentCommands(program: Command): void {
  const agent = program.command("agent").description("agents: the OAuth clients that ask for tokens");

  agent
    .command("add")
    .description("register an agent; its client secret is shown once")
    .argument("<name>")
    .option("--description <text>")
    .addHelpText("after", examples("keyward agent add deploy-bot --description 'staging deploys'", "keyward agent add deploy-bot --json | jq -r .clientSecret"))
    .action(async (name: string, options: { description?: string }, command: Command) => {
      const { out, admin } = contextOf(command);
      const created = await admin().json<AgentView & { clientSecret: string }>("POST", "/v1/agents", { json: { name, ...options } });
      emit(out, created, () => fields(out, created, ["id", "name", "clientId", "clientSecret"]));
      note(out, "The client secret is shown only this once: hand it to the agent now (KEYWARD_CLIENT_SECRET).");
    });

  agent
    .command("list")
    .description("list agents")
    .addHelpText("after", examples("keyward agent list", "keyward agent list --json | jq -r '.agents[].clientId'"))
    .action(async (_options, command: Command) => {
      const { out, admin } = contextOf(command);
      const answer = await admin().json<{ agents: AgentView[] }>("GET", "/v1/agents");
      emit(out, answer, () => table(out, answer.agents, ["name", "id", "clientId", "description", "createdAt"]));
    });

  agent
    .command("rm")
    .description("remove an agent and revoke its tokens")
    .addHelpText("after", examples("keyward agent rm deploy-bot"))
    .argument("<agent>", "name or id")
    .option("--yes", "do not ask for confirmation on a terminal")
    .action(async (ref: string, options: { yes?: boolean }, command: Command) => {
      const { out, admin } = contextOf(command);
      const api = admin();
      const id = await idOf(api, "agents", ref);
      await confirmDestructive(async () => {
        const cut = await liveTokensCut(api, (token) => token.agent.id === id, "grants");
        const { grants } = await api.json<{ grants: { name: string; agents: string[] }[] }>("GET", "/v1/grants");
        const member = grants.filter((grant) => grant.agents.includes(id)).map((grant) => grant.name);
        const leaves = member.length > 0 ? `; it leaves grants ${member.join(", ")}` : "";
        return `remove agent ${ref} (${id}) and revoke every token it holds, now ${cut}${leaves}; its client credentials stop working`;
      }, options.yes);
      await api.json("DELETE", `/v1/agents/${encodeURIComponent(id)}`);
      emit(out, { removed: id }, () => `removed agent ${ref}; its tokens are revoked`);
    });
}
