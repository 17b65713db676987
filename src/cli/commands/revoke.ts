import type { Command } from "commander";
import { CliError } from "../connection.js";
import { contextOf, examples } from "../context.js";
import { emit, fields, paint, terminalText } from "../output.js";
import { confirmDestructive } from "../confirm.js";
import { liveTokensCut, type LiveToken } from "../consequences.js";
import { idOf } from "../resolve.js";

type RevokeOptions = { jti?: string; agent?: string; grant?: string; upstream?: string; environment?: string; all?: boolean; reason?: string; yes?: boolean };
type KillSwitch = { engaged: boolean; engagedAt: string | null; engagedBy: string | null; reason: string | null };

export function revocationCommands(program: Command): void {
  program
    .command("revoke")
    .description("revoke tokens, with effect on the very next call on every replica; name exactly one selector")
    .option("--jti <jti>", "one token (and every token exchanged from it)")
    .option("--agent <agent>", "an agent's tokens (name or id)")
    .option("--grant <grant>", "a grant's tokens (name or id)")
    .option("--upstream <name>", "every token for an upstream")
    .option("--environment <name>", "every token for upstreams in an environment")
    .option("--all", "every token issued so far")
    .option("--reason <text>", "recorded in the audit log")
    .option("--yes", "do not ask for confirmation on a terminal")
    .addHelpText("after", examples("keyward revoke --agent deploy-bot --reason 'task finished'", "keyward revoke --jti 3f0c… --reason leaked", "keyward revoke --all --reason incident-42"))
    .action(async (options: RevokeOptions, command: Command) => {
      const { out, admin } = contextOf(command);
      const api = admin();
      const chosen = (["jti", "agent", "grant", "upstream", "environment", "all"] as const).filter((k) => options[k] !== undefined);
      if (chosen.length !== 1) throw new CliError("name exactly one of --jti, --agent, --grant, --upstream, --environment, --all");
      const reason = options.reason === undefined ? {} : { reason: options.reason };
      const selector =
        options.agent !== undefined ? { agentId: await idOf(api, "agents", options.agent) }
        : options.grant !== undefined ? { grantId: await idOf(api, "grants", options.grant) }
        : options.jti !== undefined ? { jti: options.jti }
        : options.upstream !== undefined ? { upstream: options.upstream }
        : options.environment !== undefined ? { environment: options.environment }
        : { all: true };
      await confirmDestructive(async () => {
        if ("all" in selector) return `revoke every token issued so far, for every agent: now ${await liveTokensCut(api, () => true, "both")}`;
        if ("jti" in selector) return `revoke token ${selector.jti} and every token exchanged from it`;
        const [which, named] =
          "agentId" in selector ? [(t: LiveToken) => t.agent.id === selector.agentId, `agent ${options.agent} (${selector.agentId})`]
          : "grantId" in selector ? [(t: LiveToken) => t.grant.id === selector.grantId, `grant ${options.grant} (${selector.grantId})`]
          : "upstream" in selector ? [(t: LiveToken) => t.upstream === selector.upstream, `upstream ${selector.upstream}`]
          : [(t: LiveToken) => t.environment === selector.environment, `upstreams in environment ${selector.environment}`];
        return `revoke every token issued so far for ${named}: now ${await liveTokensCut(api, which, "both")}`;
      }, options.yes);
      const revocation = await api.json<Record<string, unknown>>("POST", "/v1/revocations", { json: { ...selector, ...reason } });
      emit(out, revocation, () => fields(out, revocation, ["id", "selector", "value", "revokedAt", "reason"]));
    });

  const killSwitch = program
    .command("kill-switch")
    .description("freeze every agent token, including ones issued while engaged, until an admin lifts it")
    .addHelpText("after", examples("keyward kill-switch engage --reason 'agent misbehaving'", "keyward kill-switch status", "keyward kill-switch lift --reason 'incident closed'"));

  const show = (command: Command, status: KillSwitch) => {
    const { out } = contextOf(command);
    emit(out, status, () =>
      status.engaged
        ? `${paint(out, "red", "ENGAGED")} since ${status.engagedAt} by ${status.engagedBy}${status.reason ? ` (${terminalText(status.reason)})` : ""}`
        : paint(out, "green", "not engaged"),
    );
  };
  killSwitch
    .command("status")
    .description("whether it is engaged")
    .addHelpText("after", examples("keyward kill-switch status", "keyward kill-switch status --json"))
    .action(async (_o, command: Command) => {
      show(command, await contextOf(command).admin().json<KillSwitch>("GET", "/v1/kill-switch"));
    });
  killSwitch
    .command("engage")
    .description("engage it (admin or security)")
    .addHelpText("after", examples("keyward kill-switch engage --reason 'agent deleting volumes, INC-1234'"))
    .option("--reason <text>")
    .option("--yes", "do not ask for confirmation on a terminal")
    .action(async ({ yes, ...options }: { reason?: string; yes?: boolean }, command: Command) => {
      const api = contextOf(command).admin();
      await confirmDestructive(
        async () => `freeze every agent token, now ${await liveTokensCut(api, () => true, "agents")}, and any issued while it is engaged, until an admin lifts it`,
        yes,
      );
      show(command, await api.json<KillSwitch>("POST", "/v1/kill-switch", { json: options }));
    });
  killSwitch
    .command("lift")
    .description("lift it (admin only)")
    .addHelpText("after", examples("keyward kill-switch lift --reason 'INC-1234 contained'"))
    .option("--reason <text>")
    .action(async (options: { reason?: string }, command: Command) => {
      show(command, await contextOf(command).admin().json<KillSwitch>("DELETE", "/v1/kill-switch", { json: options }));
    });
}
