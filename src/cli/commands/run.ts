import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import type { Command } from "commander";
import { Keyward } from "../../sdk/client.js";
import { KeywardApiError } from "../../sdk/errors.js";
import { bearerAuthorization, BrokerHttp } from "../../sdk/http.js";
import { brokerUrl, CliError } from "../connection.js";
import { collect, contextOf, examples } from "../context.js";
import { childEnvironment } from "../run/environment.js";
import { LocalRelay } from "../run/relay.js";

type RunOptions = { grant?: string[]; clientId?: string; clientSecretFile?: string; forwardProxy?: string; direct: string };
type GrantEnv = { upstream: string; scheme: string; host: string; port: number; placeholders: Record<string, string> };

const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** The agent's client secret: KEYWARD_CLIENT_SECRET, or the file --client-secret-file / KEYWARD_CLIENT_SECRET_FILE names. */
function clientSecretOf(env: NodeJS.ProcessEnv, file: string | undefined): string {
  const path = file ?? env.KEYWARD_CLIENT_SECRET_FILE;
  if (path) return readFileSync(path, "utf8").trim();
  if (env.KEYWARD_CLIENT_SECRET) return env.KEYWARD_CLIENT_SECRET;
  throw new CliError("no client secret: set KEYWARD_CLIENT_SECRET or KEYWARD_CLIENT_SECRET_FILE, or pass --client-secret-file");
}

/** KEYWARD_FORWARD_PROXY_URL, else the broker's host on port 8081 (the compose file's default). */
function forwardProxyUrl(env: NodeJS.ProcessEnv, flag: string | undefined): URL {
  if (flag ?? env.KEYWARD_FORWARD_PROXY_URL) return new URL(flag ?? env.KEYWARD_FORWARD_PROXY_URL!);
  const url = new URL(brokerUrl(env));
  return new URL(`http://${url.hostname}:8081`);
}

export function runCommand(program: Command): void {
  program
    .command("run")
    .description("run a command (an agent, a CLI) with all its HTTP(S) traffic going through Keyward's forward proxy")
    .option("--grant <grant>", "a grant to get tokens for; repeatable (KEYWARD_GRANTS, comma-separated)", collect)
    .option("--client-id <id>", "the agent's client id (KEYWARD_CLIENT_ID)")
    .option("--client-secret-file <path>", "a file holding the agent's client secret (KEYWARD_CLIENT_SECRET_FILE)")
    .option("--forward-proxy <url>", "Keyward's forward proxy (KEYWARD_FORWARD_PROXY_URL; default: the broker's host, port 8081)")
    .option("--direct <hosts>", "hosts the command reaches directly, not through Keyward, comma-separated (NO_PROXY); default none", "")
    .argument("<command...>", "the command and its arguments, after --")
    .addHelpText(
      "after",
      examples(
        "KEYWARD_CLIENT_ID=kwc_… KEYWARD_CLIENT_SECRET_FILE=~/.keyward/agent keyward run --grant github-read -- claude",
        "keyward run --grant github-read --grant s3-logs -- gh repo view org/app",
      ) +
        "\nThe command gets HTTPS_PROXY/HTTP_PROXY pointing at a local relay that adds a fresh token to every\n" +
        "connection, the CA variables (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,\n" +
        "GIT_SSL_CAINFO, AWS_CA_BUNDLE), and placeholders for the variables the upstreams name. It never gets\n" +
        "the client secret. Its exit status is keyward's.\n",
    )
    .action(async (argv: string[], options: RunOptions, command: Command) => {
      const { env } = contextOf(command);
      const grants = options.grant ?? (env.KEYWARD_GRANTS ?? "").split(",").map((g) => g.trim()).filter(Boolean);
      if (grants.length === 0) throw new CliError("no grant: pass --grant (repeatable) or set KEYWARD_GRANTS");
      const clientId = options.clientId ?? env.KEYWARD_CLIENT_ID;
      if (!clientId) throw new CliError("no client id: pass --client-id or set KEYWARD_CLIENT_ID");
      const url = brokerUrl(env);
      const keyward = await Keyward.connect({ url, clientId, clientSecret: clientSecretOf(env, options.clientSecretFile) });
      const http = new BrokerHttp(url);
      // First: without a forward proxy nothing below can work, and this says why.
      const caPem = await http.send({ path: "/v1/forward-proxy/ca.pem" }).then(
        (response) => response.text(),
        (err: unknown) => {
          if (err instanceof KeywardApiError && err.status === 404) throw new CliError("the broker serves no forward proxy CA: is KEYWARD_FORWARD_PROXY_PORT set?");
          throw err;
        },
      );

      // Which grant's token each upstream origin takes, and the placeholders they name.
      const byOrigin = new Map<string, string>();
      const placeholders: Record<string, string> = {};
      for (const grant of grants) {
        const token = await keyward.token({ grant });
        const grantEnv = await http.json<GrantEnv>({ method: "GET", path: "/v1/forward-proxy/env", authorization: bearerAuthorization(token.accessToken) });
        const origin = `${grantEnv.host}:${grantEnv.port}`;
        // A tunnel is opened with one token, chosen by where it goes: of two grants there, one would be ignored.
        const other = byOrigin.get(origin);
        if (other !== undefined) throw new CliError(`grants "${other}" and "${grant}" both reach ${origin}: a run takes one grant per upstream host and port`);
        byOrigin.set(origin, grant);
        Object.assign(placeholders, grantEnv.placeholders);
      }
      const tokenFor = async (host: string, port: number) =>
        (await keyward.token({ grant: byOrigin.get(`${host}:${port}`) ?? grants[0]! })).accessToken;

      const dir = mkdtempSync(join(tmpdir(), "keyward-run-"));
      const caFile = join(dir, "keyward-ca.pem");
      const bundleFile = join(dir, "ca-bundle.pem");
      writeFileSync(caFile, caPem, { mode: 0o600 });
      writeFileSync(bundleFile, [...rootCertificates, caPem].join("\n"), { mode: 0o600 });

      const relay = await LocalRelay.start(forwardProxyUrl(env, options.forwardProxy), tokenFor, (err) =>
        process.stderr.write(`keyward run: ${err instanceof Error ? err.message : String(err)}\n`),
      );
      const childEnv = childEnvironment({ parent: env, proxyUrl: relay.proxyUrl, noProxy: options.direct, caFile, bundleFile, placeholders });
      const [file, ...args] = argv;
      const child = spawn(file!, args, { stdio: "inherit", env: childEnv });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
      const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) => resolve({ code, signal }));
      }).finally(async () => {
        for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
        await relay.close();
        rmSync(dir, { recursive: true, force: true });
      });
      // Killed by a signal: die of the same one, so whoever started keyward sees what happened.
      if (outcome.signal) process.kill(process.pid, outcome.signal);
      process.exitCode = outcome.code ?? 1;
    });
}
