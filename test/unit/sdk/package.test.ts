import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// The agent SDK as another project gets it: the package's "./sdk" export, compiled to dist/sdk by
// `npm run build:sdk` (postinstall, prepack), with nothing of the server in it.
const ROOT = process.cwd();
const SOURCE = join(ROOT, "src/sdk");
const BUILT = join(ROOT, "dist/sdk");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

const filesIn = (dir: string, suffix: string) =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(suffix) && !name.endsWith(".d.ts"))
    .map((name) => join(dir, name));

/** Every module a file imports: static, `export … from`, `import type` and dynamic `import()`. */
const importsIn = (text: string) => ts.preProcessFile(text, true, true).importedFiles.map((imported) => imported.fileName);
const importsOf = (file: string) => importsIn(readFileSync(file, "utf8"));

/** What no SDK file may import: anything that is not one of its own files, named for a clear message. */
function outsiders(dir: string, files: string[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    for (const specifier of importsOf(file)) {
      const inside = specifier.startsWith(".") && !relative(dir, resolve(dirname(file), specifier)).startsWith("..");
      if (!inside) found.push(`${relative(ROOT, file)} imports ${specifier}`);
    }
  }
  return found;
}

const execFileAsync = promisify(execFile);

/**
 * Run by plain `node` in the package's directory (no tsx, no loader): imports `keyward/sdk` by the
 * package's own name, as a dependent project would, while a resolve hook records every module loaded.
 */
const CHILD = `
import { register } from "node:module";
import { MessageChannel } from "node:worker_threads";
const loaded = [];
const { port1, port2 } = new MessageChannel();
port1.on("message", (url) => loaded.push(url));
port1.unref();
const hooks = \`
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  port.postMessage(result.url);
  return result;
}\`;
register("data:text/javascript," + encodeURIComponent(hooks), { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });

const sdk = await import("keyward/sdk");
const seen = [];
const kw = await sdk.Keyward.connect({
  url: "http://keyward.invalid/",
  clientId: "agent",
  clientSecret: "secret",
  fetch: async (input) => {
    seen.push(String(input));
    return new Response(JSON.stringify({ issuer: "http://keyward.invalid" }), { headers: { "content-type": "application/json" } });
  },
});
await new Promise((r) => setTimeout(r, 50)); // the hook thread's last messages
console.log(JSON.stringify({
  exports: Object.keys(sdk).sort(),
  resolved: import.meta.resolve("keyward/sdk"),
  proxyUrl: kw.proxyUrl("github", "/repos"),
  seen,
  deniedIsApiError: new sdk.Denied(403, "forbidden", "no") instanceof sdk.KeywardApiError,
  loaded,
}));
`;

describe("the agent SDK package (keyward/sdk)", () => {
  it("exports compiled JavaScript with declarations, built from src/sdk and not checked in", () => {
    // One build for import and require (Node >= 20.19 requires ES modules): one copy of each class, so
    // `instanceof Denied` holds whichever way the agent loaded it.
    expect(pkg.exports["./sdk"]).toEqual({ types: "./dist/sdk/index.d.ts", import: "./dist/sdk/index.js", require: "./dist/sdk/index.js" });
    expect(pkg.scripts["build:sdk"]).toBe("tsc -p tsconfig.sdk.json");
    expect(pkg.scripts.postinstall).toContain("npm run build:sdk");
    expect(pkg.scripts.prepack).toContain("npm run build:sdk");
    expect(readFileSync(join(ROOT, ".gitignore"), "utf8").split("\n")).toContain("dist/");

    // Every source file has its build, no older than the source: a stale build would be what users get.
    const stale: string[] = [];
    for (const source of filesIn(SOURCE, ".ts")) {
      const base = join(BUILT, relative(SOURCE, source)).replace(/\.ts$/, "");
      for (const built of [`${base}.js`, `${base}.d.ts`]) {
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) stale.push(relative(ROOT, built));
      }
    }
    expect(stale, "dist/sdk is missing or older than src/sdk: run `npm run build:sdk`").toEqual([]);
  });

  it("plain node imports keyward/sdk through the package's own name and gets the Keyward class", async () => {
    // A clean environment: no NODE_OPTIONS (vitest's or tsx's loader) reaches the child.
    const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "--no-warnings", "-e", CHILD], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "" },
      timeout: 30_000,
    });
    const result = JSON.parse(stdout);
    expect(result.exports).toEqual(["Denied", "ERROR_CODES", "Keyward", "KeywardApiError", "NeedsApproval", "Revoked", "isErrorCode"]);
    expect(result.resolved).toBe(new URL("dist/sdk/index.js", `file://${ROOT}/`).href);
    // It ran: connect() asked the broker's metadata through the given fetch.
    expect(result.seen).toEqual(["http://keyward.invalid/.well-known/oauth-authorization-server"]);
    expect(result.proxyUrl).toBe("http://keyward.invalid/proxy/github/repos");
    expect(result.deniedIsApiError).toBe(true);
    // Loading it loads its own compiled files and nothing else: no server code, no dependency, no builtin.
    const sdkModules = result.loaded.filter((url: string) => url !== "node:module" && url !== "node:worker_threads");
    expect(sdkModules.length).toBeGreaterThanOrEqual(4);
    for (const url of sdkModules) expect(url, url).toMatch(new RegExp(`^file://${BUILT}/[a-z-]+\\.js$`));
  }, 30_000);

  it("plain node require()s keyward/sdk from CommonJS, without warnings, and gets the same classes and codes", async () => {
    const child = `
      const sdk = require("keyward/sdk");
      const denied = new sdk.Denied(403, "deny_rule", "request denied", "deny[0] matches");
      console.log(JSON.stringify({
        resolved: require.resolve("keyward/sdk"),
        keyward: typeof sdk.Keyward.connect,
        deniedIsApiError: denied instanceof sdk.KeywardApiError,
        code: denied.code,
        denyRule: sdk.ERROR_CODES.deny_rule,
        known: [sdk.isErrorCode("path_not_granted"), sdk.isErrorCode("nonsense")],
      }));`;
    const { stdout, stderr } = await execFileAsync(process.execPath, ["-e", child], { cwd: ROOT, env: { PATH: process.env.PATH ?? "" }, timeout: 30_000 });
    expect(stderr).toBe("");
    expect(JSON.parse(stdout)).toEqual({
      resolved: join(BUILT, "index.js"),
      keyward: "function",
      deniedIsApiError: true,
      code: "deny_rule",
      denyRule: { status: 403, step: "decide", meaning: expect.stringContaining("deny rules") },
      known: [true, false],
    });
  }, 30_000);

  it("imports nothing outside src/sdk: no server code, no dependency (fastify, prisma, pglite, pg, …), no Node builtin", () => {
    const sources = filesIn(SOURCE, ".ts");
    expect(sources.map((f) => relative(SOURCE, f)).sort()).toContain("index.ts");
    expect(outsiders(SOURCE, sources)).toEqual([]);
    expect(outsiders(BUILT, filesIn(BUILT, ".js"))).toEqual([]);

    for (const dependency of Object.keys(pkg.dependencies)) expect(sources.flatMap(importsOf), dependency).not.toContain(dependency);
    // The check sees every way of importing.
    const sample = `import a from "fastify"; import type { P } from "@prisma/client"; export * from "../server.js";
      export { b } from "pg"; const c = await import("@electric-sql/pglite"); import "node:fs";`;
    expect(importsIn(sample)).toEqual(["fastify", "@prisma/client", "../server.js", "pg", "@electric-sql/pglite", "node:fs"]);
  });

  it("compiles against the ES and DOM libraries only (no @types/node), so it runs wherever fetch does", () => {
    const config = ts.readConfigFile(join(ROOT, "tsconfig.sdk.json"), ts.sys.readFile);
    expect(config.error).toBeUndefined();
    const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
    expect(parsed.options.types).toEqual([]);
    expect(parsed.options.declaration).toBe(true);
    expect(parsed.fileNames.every((f) => f.startsWith(`${SOURCE}/`))).toBe(true);
  });
});
