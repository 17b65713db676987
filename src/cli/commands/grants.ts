import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { CliError } from "../connection.js";
import { collect, contextOf, examples } from "../context.js";
import { emit, fields, table } from "../output.js";
import { confirmDestructive } from "../confirm.js";
import { liveTokensCut } from "../consequences.js";
import { idOf } from "../resolve.js";

type GrantView = { id: string; name: string; upstream: string; agents: string[]; methods: string[]; paths: string[]; maxTtlSeconds: number } & Record<string, unknown>;

/** `DELETE`, `/v1/volumes/**` or `POST /v1/volumes/*` → a deny rule. */
function denyRule(text: string): { method?: string; path?: string } {
  const [first, second, ...rest] = text.trim().split(/\s+/);
  if (!first || rest.length > 0) throw new CliError(`--deny "${text}": expected METHOD, /path or "METHOD /path"`);
  if (second !== undefined) return { method: first.toUpperCase(), path: second };
  return first.startsWith("/") ? { path: first } : { method: first.toUpperCase() };
}

function readGrantFile(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`${file}: ${(err as Error).message}`);
  }
}

type AddOptions = { upstream?: string; agent?: string[]; method?: string[]; path?: string[]; deny?: string[]; maxTtl?: string; file?: string };

export function grantCommands(program: Command): void {
  const grant = program.command("grant").description("grants: what agents may do on an upstream");

  grant
    .command("add")
    .description("grant agents a capability on an upstream (flags override the fields of --file)")
    .argument("<name>")
    .option("--upstream <name>")
    .option("--agent <agent>", "an agent (name or id) the grant is for; repeatable", collect)
    .option("--method <method>", "an allowed method; repeatable", collect)
    .option("--path <pattern>", "an allowed path pattern (*, {name}: one segment, **: any depth); repeatable", collect)
    .option("--deny <rule>", 'METHOD, /path or "METHOD /path", denied even where allowed; repeatable', collect)
    .option("--max-ttl <seconds>", "longest token life")
    .option("--file <grant.json>", "the grant as JSON, with every policy field (docs/policy.md)")
    .addHelpText(
      "after",
      examples(
        "keyward grant add deploy-staging --upstream hosting-staging --agent deploy-bot --method GET --method POST --path '/v1/**' --deny DELETE --max-ttl 900",
        "keyward grant add railway-ops --file railway-ops.json --agent ops-bot",
      ),
    )
    .action(async (name: string, options: AddOptions, command: Command) => {
      const { out, admin } = contextOf(command);
      const api = admin();
      const body: Record<string, unknown> = { ...(options.file && readGrantFile(options.file)), name };
      if (options.upstream) body.upstream = options.upstream;
      if (options.agent) body.agents = await Promise.all(options.agent.map((ref) => idOf(api, "agents", ref)));
      if (options.method) body.methods = options.method.map((m) => m.toUpperCase());
      if (options.path) body.paths = options.path;
      if (options.deny) body.deny = options.deny.map(denyRule);
      if (options.maxTtl) body.maxTtlSeconds = Number(options.maxTtl);
      body.agents ??= [];
      const created = await api.json<GrantView>("POST", "/v1/grants", { json: body });
      emit(out, created, () => fields(out, created, ["id", "name", "upstream", "agents", "methods", "paths", "deny", "maxTtlSeconds"]));
    });

  grant
    .command("list")
    .description("list grants")
    .addHelpText("after", examples("keyward grant list", "keyward grant list --json | jq '.grants[] | {name, upstream}'"))
    .action(async (_options, command: Command) => {
      const { out, admin } = contextOf(command);
      const answer = await admin().json<{ grants: GrantView[] }>("GET", "/v1/grants");
      emit(out, answer, () => table(out, answer.grants, ["name", "id", "upstream", "methods", "paths", "maxTtlSeconds"]));
    });

  grant
    .command("show")
    .description("show a grant with every policy field")
    .addHelpText("after", examples("keyward grant show deploy-staging", "keyward grant show deploy-staging --json > deploy-staging.json"))
    .argument("<grant>", "name or id")
    .action(async (ref: string, _options, command: Command) => {
      const { out, admin } = contextOf(command);
      const id = await idOf(admin(), "grants", ref);
      const shown = await admin().json<GrantView>("GET", `/v1/grants/${encodeURIComponent(id)}`);
      emit(out, shown, () => fields(out, shown));
    });

  grant
    .command("rm")
    .description("remove a grant and revoke its tokens")
    .addHelpText("after", examples("keyward grant rm deploy-staging"))
    .argument("<grant>", "name or id")
    .option("--yes", "do not ask for confirmation on a terminal")
    .action(async (ref: string, options: { yes?: boolean }, command: Command) => {
      const { out, admin } = contextOf(command);
      const api = admin();
      const id = await idOf(api, "grants", ref);
      await confirmDestructive(async () => {
        const cut = await liveTokensCut(api, (token) => token.grant.id === id, "agents");
        return `remove grant ${ref} (${id}) and revoke every token issued under it, now ${cut}`;
      }, options.yes);
      await api.json("DELETE", `/v1/grants/${encodeURIComponent(id)}`);
      emit(out, { removed: id }, () => `removed grant ${ref}; its tokens are revoked`);
    });
}
