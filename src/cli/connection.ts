import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { bearerAuthorization, BrokerHttp, type BrokerRequest } from "../sdk/http.js";

/** A problem the user can fix (configuration, usage): shown as is, without a stack. */
export class CliError extends Error {}

const DEFAULT_URL = "http://127.0.0.1:8080";

const configFile = z.strictObject({
  url: z.url().optional(),
  adminKey: z.string().min(1).optional(),
});

export const configPath = (env: NodeJS.ProcessEnv) =>
  join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "keyward", "config.json");

/** `~/.config/keyward/config.json`: `{ "url": "...", "adminKey": "kwa_..." }`, all optional. */
function readConfigFile(env: NodeJS.ProcessEnv): z.infer<typeof configFile> {
  const path = configPath(env);
  if (!existsSync(path)) return {};
  let parsed: unknown;
  const text = readFileSync(path, "utf8");
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // JSON.parse's message quotes the text around the mistake, which may be the admin key: only where it is.
    const position = /at position (\d+)/.exec((err as Error).message)?.[1];
    const before = position === undefined ? null : text.slice(0, Number(position)).split("\n");
    const where = before ? ` at line ${before.length}, column ${before.at(-1)!.length + 1}` : "";
    throw new CliError(`${path}: not valid JSON${where} (check its quotes and commas)`);
  }
  const config = configFile.safeParse(parsed);
  if (!config.success) throw new CliError(`${path}: ${config.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  if (config.data.adminKey && (statSync(path).mode & 0o077) !== 0) {
    process.stderr.write(`keyward: warning: ${path} holds an admin key and is readable by others: chmod 600 it\n`);
  }
  return config.data;
}

/** The broker to talk to: KEYWARD_URL, else the config file's url, else the local default. */
export const brokerUrl = (env: NodeJS.ProcessEnv) => env.KEYWARD_URL || readConfigFile(env).url || DEFAULT_URL;

/** The admin API of the configured broker, with KEYWARD_ADMIN_KEY or the config file's adminKey. */
export class AdminApi {
  readonly #http: BrokerHttp;
  readonly #authorization: string;

  constructor(env: NodeJS.ProcessEnv) {
    const adminKey = env.KEYWARD_ADMIN_KEY || readConfigFile(env).adminKey;
    if (!adminKey) throw new CliError(`no admin key: set KEYWARD_ADMIN_KEY, or "adminKey" in ${configPath(env)}`);
    this.#http = new BrokerHttp(brokerUrl(env));
    this.#authorization = bearerAuthorization(adminKey);
  }

  json<T>(method: string, path: string, options: Pick<BrokerRequest, "json" | "query"> = {}): Promise<T> {
    return this.#http.json<T>({ method, path, authorization: this.#authorization, ...options });
  }

  /** The unread response, for streamed answers (the audit export). */
  send(path: string, query: BrokerRequest["query"]): Promise<Response> {
    return this.#http.send({ path, query, authorization: this.#authorization });
  }
}

/**
 * Runs `read` with the terminal's echo off: a secret typed or pasted at the prompt is not shown, so it stays
 * out of the scrollback, a shared screen and a recorded session (`script`, tmux logs), as `sudo` and `ssh`
 * keep a password. Only echo changes (stty), not line editing or Ctrl-D. Echo comes back once it is read;
 * on Ctrl-C Node itself restores the terminal's settings as it exits. Where stty cannot (no such command),
 * the input is read as it was.
 */
async function withoutEcho<T>(read: () => Promise<T>): Promise<T> {
  const stty = (mode: string) => spawnSync("stty", [mode], { stdio: ["inherit", "ignore", "ignore"] }).status === 0;
  if (!stty("-echo")) return read();
  try {
    return await read();
  } finally {
    stty("echo");
  }
}

/** All of stdin (a secret piped or pasted: never a flag, so it stays out of shell history and `ps`). */
export async function readStdin(prompt: string): Promise<string> {
  const readAll = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  };
  if (!process.stdin.isTTY) return readAll();
  process.stderr.write(`${prompt} (not shown; then Enter and Ctrl-D):\n`);
  return withoutEcho(readAll);
}

/** An agent's credentials: client id from the flag or KEYWARD_CLIENT_ID, secret from KEYWARD_CLIENT_SECRET or stdin. */
export async function agentCredentials(env: NodeJS.ProcessEnv, clientId: string | undefined, stdinAllowed: boolean) {
  const id = clientId || env.KEYWARD_CLIENT_ID;
  if (!id) throw new CliError("no client id: pass --client-id or set KEYWARD_CLIENT_ID");
  let secret = env.KEYWARD_CLIENT_SECRET;
  if (!secret && stdinAllowed) secret = await readStdin("client secret");
  if (!secret) throw new CliError(`no client secret: set KEYWARD_CLIENT_SECRET${stdinAllowed ? " or pipe it to stdin" : ""}`);
  return { url: brokerUrl(env), clientId: id, clientSecret: secret };
}
