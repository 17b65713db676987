import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { CliError, readStdin } from "../connection.js";
import { confirmDestructive } from "../confirm.js";
import { contextOf, examples } from "../context.js";
import { emit, fields, note, table } from "../output.js";

type UpstreamView = {
  name: string;
  baseUrl: string;
  environment: string;
  protocol: string;
  presets: string[];
  auth: { type: string };
  secret: { set: boolean; updatedAt: string };
};

/**
 * The upstream's secret, from --secret-file or stdin, never from a flag (shell history, `ps`). A JSON
 * object is sent as one: kinds such as aws-sigv4 take several parts.
 */
async function readSecret(file: string | undefined): Promise<string | Record<string, string>> {
  const text = file ? readFileSync(file, "utf8").replace(/\r?\n$/, "") : await readStdin("upstream secret");
  if (text === "") throw new CliError("the secret is empty");
  if (!text.trimStart().startsWith("{")) return text;
  try {
    return JSON.parse(text) as Record<string, string>;
  } catch {
    throw new CliError("the secret starts with { but is not a JSON object");
  }
}

function parseAuth(json: string): object {
  try {
    return JSON.parse(json) as object;
  } catch {
    throw new CliError(`--auth is not JSON: ${json}`);
  }
}

const listed = (u: UpstreamView) => ({ ...u, auth: u.auth.type, secretUpdatedAt: u.secret.updatedAt });

export function upstreamCommands(program: Command): void {
  const upstream = program.command("upstream").description("the APIs agents reach through the proxy, and their real keys");

  upstream
    .command("add")
    .description("register an upstream with its secret (read from --secret-file or stdin)")
    .argument("<name>", "a lowercase slug: agents call /proxy/<name>/…")
    .requiredOption("--base-url <url>", "where calls are forwarded")
    .requiredOption("--environment <environment>", "e.g. staging, production")
    .option("--auth <json>", "how the secret is applied (docs/credentials.md)", '{"type":"header"}')
    .option("--protocol <protocol>", "http, graphql or jsonrpc")
    .option("--presets <names>", 'backup protection presets, comma-separated ("" for none; default: those known for the host)')
    .option("--secret-file <file>", "read the secret from this file instead of stdin")
    .addHelpText(
      "after",
      examples(
        "keyward upstream add hosting-staging --base-url https://api.example.com --environment staging < key.txt",
        `keyward upstream add github --base-url https://api.github.com --environment production --auth '{"type":"header","template":"token {secret}"}' --secret-file gh.txt`,
        `keyward upstream add photos --base-url https://b.s3.eu-west-1.amazonaws.com --environment prod --auth '{"type":"aws-sigv4","region":"eu-west-1","service":"s3"}' --secret-file aws.json`,
      ),
    )
    .action(async (name: string, options: { baseUrl: string; environment: string; auth: string; protocol?: string; presets?: string; secretFile?: string }, command: Command) => {
      const { out, admin } = contextOf(command);
      const body = {
        name,
        baseUrl: options.baseUrl,
        environment: options.environment,
        auth: parseAuth(options.auth),
        ...(options.protocol && { protocol: options.protocol }),
        ...(options.presets !== undefined && { presets: options.presets.split(",").filter(Boolean) }),
        secret: await readSecret(options.secretFile),
      };
      const created = await admin().json<UpstreamView>("POST", "/v1/upstreams", { json: body });
      emit(out, created, () => fields(out, listed(created), ["name", "baseUrl", "environment", "protocol", "presets", "auth", "secretUpdatedAt"]));
    });

  upstream
    .command("list")
    .description("list upstreams (secrets are never shown)")
    .addHelpText("after", examples("keyward upstream list", "keyward upstream list --json | jq -r '.upstreams[].name'"))
    .action(async (_options, command: Command) => {
      const { out, admin } = contextOf(command);
      const answer = await admin().json<{ upstreams: UpstreamView[] }>("GET", "/v1/upstreams");
      emit(out, answer, () => table(out, answer.upstreams.map(listed), ["name", "environment", "protocol", "baseUrl", "auth", "secretUpdatedAt"]));
    });

  upstream
    .command("set-secret")
    .description("replace an upstream's secret (read from --secret-file or stdin)")
    .argument("<name>")
    .option("--secret-file <file>", "read the secret from this file instead of stdin")
    .addHelpText("after", examples("pass show hosting/staging | keyward upstream set-secret hosting-staging"))
    .action(async (name: string, options: { secretFile?: string }, command: Command) => {
      const { out, admin } = contextOf(command);
      const updated = await admin().json<UpstreamView>("PUT", `/v1/upstreams/${encodeURIComponent(name)}/secret`, {
        json: { secret: await readSecret(options.secretFile) },
      });
      emit(out, updated, () => `secret of ${updated.name} replaced at ${updated.secret.updatedAt}`);
    });

  upstream
    .command("rm")
    .description("remove an upstream (refused while grants use it)")
    .addHelpText("after", examples("keyward upstream rm hosting-staging"))
    .argument("<name>")
    .option("--yes", "do not ask for confirmation on a terminal")
    .action(async (name: string, options: { yes?: boolean }, command: Command) => {
      const { out, admin } = contextOf(command);
      const api = admin();
      await confirmDestructive(async () => {
        const { grants } = await api.json<{ grants: { name: string; upstream: string }[] }>("GET", "/v1/grants");
        const users = grants.filter((grant) => grant.upstream === name).map((grant) => grant.name);
        const refusal = users.length > 0 ? `; grants ${users.join(", ")} still use it, so it is refused until they are removed` : "";
        return `remove upstream ${name} and delete its stored credential${refusal}`;
      }, options.yes);
      await api.json("DELETE", `/v1/upstreams/${encodeURIComponent(name)}`);
      emit(out, { removed: name }, () => `removed upstream ${name}`);
      note(out, "Its secret is gone from Keyward; revoke it at the provider too if it may have leaked.", "dim");
    });
}
