import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";

/**
 * The README and docs/ cannot drift from the code: every page is reachable from the README, every
 * relative link lands on a file (and a heading, for a link to one), and the commands the pages tell a
 * reader to run still exist: npm scripts, `keyward` commands (read from the CLI's own command tree),
 * files given to `npx tsx` or `npx vitest run`, and the broker's environment variables.
 */
const ROOT = process.cwd();
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const DOC_PAGES = readdirSync(join(ROOT, "docs"))
  .filter((file) => file.endsWith(".md"))
  .map((file) => `docs/${file}`);
const PAGES = ["README.md", "SECURITY.md", ...DOC_PAGES];

const FENCED = /^```([\w-]*)\n([\s\S]*?)^```/gm;
const withoutCode = (text: string) => text.replace(FENCED, "").replace(/`[^`\n]*`/g, "");

/** The shell a page shows: its sh/bash blocks, and its inline code spans (`npm run build:sdk` in a sentence). */
function shellSnippets(text: string): string[] {
  const blocks = [...text.matchAll(FENCED)].filter(([, lang]) => lang === "sh" || lang === "bash").map(([, , body]) => body!);
  const spans = [...text.replace(FENCED, "").matchAll(/`([^`\n]+)`/g)].map(([, span]) => span!);
  return [...blocks, ...spans];
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(text: string): Set<string> {
  const headings = text.replace(FENCED, "").match(/^#{1,6} .+$/gm) ?? [];
  return new Set(
    headings.map((heading) =>
      heading
        .replace(/^#+ /, "")
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-"),
    ),
  );
}

function relativeLinks(page: string): { target: string; anchor: string | null }[] {
  const links = [...withoutCode(read(page)).matchAll(/\]\(([^)\s]+)\)/g)].map(([, href]) => href!);
  return links
    .filter((href) => !/^[a-z][a-z+.-]*:/i.test(href))
    .map((href) => {
      const [path, anchor] = href.split("#") as [string, string | undefined];
      const target = path === "" ? page : relative(ROOT, join(ROOT, dirname(page), decodeURIComponent(path)));
      return { target, anchor: anchor ?? null };
    });
}

/** Every `keyward …` command path the CLI knows: "agent", "agent add", "kill-switch engage", … */
function cliCommands(): { all: Set<string>; withSubcommands: Set<string> } {
  const all = new Set<string>();
  const withSubcommands = new Set<string>();
  const walk = (command: Command, prefix: string) => {
    for (const sub of command.commands) {
      for (const name of [sub.name(), ...sub.aliases()]) {
        const path = `${prefix}${name}`;
        all.add(path);
        if (sub.commands.length > 0) withSubcommands.add(path);
        walk(sub, `${path} `);
      }
    }
  };
  walk(buildProgram({}), "");
  return { all, withSubcommands };
}

/** The variables the broker reads: the keys of the env schema in src/config/config.ts, and their `_FILE` forms. */
function configVariables(): { names: string[]; fileForms: string[] } {
  const source = read("src/config/config.ts");
  const schema = /const envSchema = z\.object\(\{([\s\S]*?)\n\}\);/.exec(source)?.[1] ?? "";
  const names = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map(([, name]) => name!);
  const fileList = /const SECRET_FILE_VARIABLES = \[([^\]]*)\]/.exec(source)?.[1] ?? "";
  const fileForms = [...fileList.matchAll(/"([A-Z0-9_]+)"/g)].map(([, name]) => `${name}_FILE`);
  return { names, fileForms };
}

describe("README and docs/", () => {
  it("the README stays a five-minute read: under 250 lines, the details left to docs/", () => {
    expect(read("README.md").split("\n").length).toBeLessThan(250);
  });

  it("the README links every docs/ page directly", () => {
    const linked = new Set(relativeLinks("README.md").map((link) => link.target));
    expect(DOC_PAGES.filter((page) => !linked.has(page))).toEqual([]);
  });

  it("every relative link resolves to a file, and an anchor to a heading of that page", () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      for (const { target, anchor } of relativeLinks(page)) {
        if (!existsSync(join(ROOT, target))) broken.push(`${page}: ${target} does not exist`);
        else if (anchor !== null && target.endsWith(".md") && !anchorsOf(read(target)).has(anchor)) broken.push(`${page}: ${target} has no heading #${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("every `npm run`, `npm start` and `npm test` names a script of package.json", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    const missing: string[] = [];
    for (const page of PAGES) {
      for (const snippet of shellSnippets(read(page))) {
        for (const [, run, short] of snippet.matchAll(/\bnpm (?:run ([\w:.-]+)|(start|test)\b)/g)) {
          const script = (run ?? short)!;
          if (!(script in scripts)) missing.push(`${page}: npm run ${script}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("every `keyward <command> <subcommand>` is a command of the CLI (src/cli/program.ts)", () => {
    const { all, withSubcommands } = cliCommands();
    const unknown: string[] = [];
    let seen = 0;
    for (const page of PAGES) {
      for (const snippet of shellSnippets(read(page))) {
        for (const [, command, next] of snippet.matchAll(/(?:^|[\s(|;&=$])keyward ([a-z][\w-]*)(?: +([a-z][\w-]*))?/gm)) {
          seen++;
          if (!all.has(command!)) unknown.push(`${page}: keyward ${command}`);
          else if (withSubcommands.has(command!) && next !== undefined && !all.has(`${command} ${next}`)) unknown.push(`${page}: keyward ${command} ${next}`);
        }
      }
    }
    expect(seen, "the pages show keyward commands; the pattern must find them").toBeGreaterThan(20);
    expect(unknown).toEqual([]);
  });

  it("every file given to `npx tsx` or `npx vitest run` exists", () => {
    const missing: string[] = [];
    for (const page of PAGES) {
      for (const snippet of shellSnippets(read(page))) {
        for (const [, file] of snippet.matchAll(/\bnpx (?:tsx|vitest run(?: --project \w+)?) ([\w./-]+\.ts)\b/g)) {
          if (!existsSync(join(ROOT, file!))) missing.push(`${page}: ${file}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("docs/configuration.md documents every variable the broker reads, and no other", () => {
    const { names, fileForms } = configVariables();
    expect(names.length, "the env schema of src/config/config.ts was not found").toBeGreaterThan(20);
    const table = read("docs/configuration.md");
    const documented = new Set([...table.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map(([, name]) => name!).filter((name) => /^(KEYWARD_|DATABASE_URL|PORT$|HOST$|LOG_LEVEL$)/.test(name)));
    expect([...names, ...fileForms].filter((name) => !documented.has(name))).toEqual([]);
    expect([...documented].filter((name) => !names.includes(name) && !fileForms.includes(name))).toEqual([]);
  });

  it("every KEYWARD_* variable the pages mention is read somewhere in src/ or the tests", () => {
    const code = ["src", "test", "bench"].flatMap((dir) => sources(join(ROOT, dir))).map((file) => readFileSync(file, "utf8")).join("\n");
    const unread: string[] = [];
    for (const page of PAGES) {
      for (const [name] of read(page).matchAll(/\bKEYWARD_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!code.includes(name)) unread.push(`${page}: ${name}`);
      }
    }
    expect(unread).toEqual([]);
  });
});

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : sources(path);
    return entry.name.endsWith(".ts") || entry.name.endsWith(".tsx") ? [path] : [];
  });
}
