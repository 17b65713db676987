import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";

/** Git with no user configuration: what the tests' repositories are made and cloned with. */
export const gitEnv = (home: string) => ({ PATH: process.env.PATH ?? "", HOME: home, GIT_CONFIG_NOSYSTEM: "1", GIT_TERMINAL_PROMPT: "0" });

/**
 * A bare repository `<root>/<name>` with one commit holding `README` (text `readme`): the tiny repository
 * a smart-HTTP server offers for cloning.
 */
export function tinyBareRepo(root: string, name: string, readme: string): void {
  const env = gitEnv(root);
  const work = join(root, `${name}.work`);
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, "README"), readme);
  const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, env, stdio: "pipe" });
  git(work, "init", "-q", "-b", "main");
  git(work, "add", "README");
  git(work, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "tiny");
  git(root, "clone", "-q", "--bare", work, join(root, name));
}

/**
 * Git's own smart-HTTP server (`git http-backend`, run as a CGI per request) over `projectRoot`: a real
 * clone needs several requests (the ref advertisement, then POSTs to git-upload-pack), so a client keeps its
 * connection, or tunnel, open across them. Takes the request body already read.
 */
export function gitHttpBackend(projectRoot: string) {
  return (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const url = new URL(req.url ?? "/", "https://localhost");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        ...gitEnv(projectRoot),
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: String(body.length),
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        GIT_PROTOCOL: req.headers["git-protocol"]?.toString() ?? "",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    const out: Buffer[] = [];
    cgi.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    cgi.stdin.end(body);
    cgi.on("close", () => {
      const answer = Buffer.concat(out);
      const crlf = answer.indexOf("\r\n\r\n");
      const end = crlf !== -1 ? crlf : answer.indexOf("\n\n");
      if (end === -1) return void res.writeHead(500).end();
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of answer.subarray(0, end).toString("latin1").split(/\r?\n/)) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === "status") status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.end(answer.subarray(end + (crlf !== -1 ? 4 : 2)));
    });
  };
}
