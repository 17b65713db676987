import { stripVTControlCharacters } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { emit, fields, note, outputFor, paint, table, terminalText, type Output } from "../../../src/cli/output.js";

// How the CLI shows results (src/cli/output.ts): on a terminal aligned and coloured unless NO_COLOR, in a
// pipe tab-separated and plain. test/e2e/cli.test.ts sees only the pipe; this covers the terminal.
const BOLD = "\u001b[1m";
const DIM = "\u001b[2m";
const ESC = "\u001b[";

const terminal = outputFor(false, {}, true);
const plainTerminal = outputFor(false, { NO_COLOR: "1" }, true);
const pipe = outputFor(false, {}, false);

const rows = [
  { name: "hosting-staging", environment: "staging", methods: ["GET", "POST"], deny: [{ method: "DELETE" }], note: null },
  { name: "db", environment: "production", methods: [], deny: [], note: "tab-free" },
];
const columns = ["name", "environment", "methods", "deny", "note"];

describe("outputFor", () => {
  it("colours only a terminal, and not with --json, NO_COLOR or TERM=dumb", () => {
    expect(outputFor(false, {}, true)).toEqual({ json: false, tty: true, color: true });
    expect(outputFor(false, {}, false)).toEqual({ json: false, tty: false, color: false });
    expect(outputFor(true, {}, true)).toEqual({ json: true, tty: true, color: false });
    expect(outputFor(false, { NO_COLOR: "1" }, true).color).toBe(false);
    expect(outputFor(false, { NO_COLOR: "true" }, true).color).toBe(false);
    expect(outputFor(false, { TERM: "dumb" }, true).color).toBe(false);
    // no-color.org: an empty NO_COLOR does not count.
    expect(outputFor(false, { NO_COLOR: "" }, true).color).toBe(true);
  });
});

describe("table", () => {
  it("in a pipe: tab-separated with the header as named, for cut and awk; never coloured", () => {
    expect(table(pipe, rows, columns).split("\n")).toEqual([
      "name\tenvironment\tmethods\tdeny\tnote",
      'hosting-staging\tstaging\tGET,POST\t{"method":"DELETE"}\t',
      "db\tproduction\t\t\ttab-free",
    ]);
    // Not a terminal: no colour even if asked for.
    expect(table({ ...pipe, color: true }, rows, columns)).not.toContain(ESC);
    expect(table(pipe, [], ["name", "id"])).toBe("name\tid");
  });

  it("on a terminal: aligned columns under an upper-case header, no trailing spaces", () => {
    expect(table(plainTerminal, rows, columns).split("\n")).toEqual([
      "NAME             ENVIRONMENT  METHODS   DENY                 NOTE",
      'hosting-staging  staging      GET,POST  {"method":"DELETE"}',
      "db               production                                  tab-free",
    ]);
    expect(table(plainTerminal, [], ["name"])).toBe("(none)");
  });

  it("on a terminal with colour: a bold header, plain cells; the same text without the escapes", () => {
    const coloured = table(terminal, rows, columns);
    const [header, ...body] = coloured.split("\n");
    expect(header!.startsWith(BOLD)).toBe(true);
    expect(stripVTControlCharacters(header!)).toBe("NAME             ENVIRONMENT  METHODS   DENY                 NOTE");
    for (const line of body) expect(line).not.toContain(ESC);
    expect(stripVTControlCharacters(coloured)).toBe(table(plainTerminal, rows, columns));
    expect(table(terminal, [], ["name"])).toBe(`${DIM}(none)\u001b[22m`);
  });
});

describe("terminalText", () => {
  it("shows C0 and C1 controls, DEL and bidi or zero-width characters as visible escapes; other text as it is", () => {
    expect(terminalText("\u001b]52;c;eA==\u0007 \u009b2J\u007f a\u202eb ad\u200bmin")).toBe("\\u001b]52;c;eA==\\u0007 \\u009b2J\\u007f a\\u202eb ad\\u200bmin");
    expect(terminalText("café – 日本 ×2")).toBe("café – 日本 ×2");
  });

  it("is applied to every cell of a table and every field, including values inside arrays and objects", () => {
    expect(table(pipe, [{ a: "x\u001b[2Jy", b: ["\u009b1m"], c: { d: "\u202e" } }], ["a", "b", "c"])).toBe(
      'a\tb\tc\nx\\u001b[2Jy\t\\u009b1m\t{"d":"\\u202e"}',
    );
    expect(fields(pipe, { reason: "line\nbreak\ttab" })).toBe("reason: line\\u000abreak\\u0009tab");
  });
});

describe("fields and paint", () => {
  const value = { id: "ag_1", clientId: "kwc_1", scopes: ["a", "b"], revokedAt: null };

  it("one object as aligned `name: value` lines, in the order asked for", () => {
    expect(fields(pipe, value).split("\n")).toEqual(["id:        ag_1", "clientId:  kwc_1", "scopes:    a,b", "revokedAt: "]);
    expect(fields(plainTerminal, value, ["clientId", "id"])).toBe("clientId: kwc_1\nid:       ag_1");
  });

  it("dims the names when colouring, and only then", () => {
    const coloured = fields(terminal, value, ["id"]);
    expect(coloured).toBe(`${DIM}id:\u001b[22m ag_1`);
    expect(stripVTControlCharacters(coloured)).toBe(fields(plainTerminal, value, ["id"]));
    expect(fields(plainTerminal, value)).not.toContain(ESC);
  });

  it("paints by the Output alone, whatever process.stdout is (here not a terminal)", () => {
    expect(paint(terminal, "red", "ENGAGED")).toBe("\u001b[31mENGAGED\u001b[39m");
    expect(paint(terminal, "green", "not engaged")).toBe("\u001b[32mnot engaged\u001b[39m");
    expect(paint(plainTerminal, "red", "ENGAGED")).toBe("ENGAGED");
    expect(paint(pipe, "red", "ENGAGED")).toBe("ENGAGED");
  });
});

describe("emit and note", () => {
  const written = (stream: NodeJS.WriteStream) => {
    const chunks: string[] = [];
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    return chunks;
  };
  const stderrTTY = Object.getOwnPropertyDescriptor(process.stderr, "isTTY");
  afterEach(() => {
    vi.restoreAllMocks();
    if (stderrTTY) Object.defineProperty(process.stderr, "isTTY", stderrTTY);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  });

  it("emit writes the data as JSON with --json, else the human form, on stdout", () => {
    const out = written(process.stdout);
    const human = vi.fn(() => "human form");
    emit(outputFor(true, {}, true), { a: 1 }, human);
    expect(human).not.toHaveBeenCalled();
    emit(terminal, { a: 1 }, human);
    expect(out).toEqual(['{\n  "a": 1\n}\n', "human form\n"]);
  });

  it("note goes to stderr, never with --json, coloured only when stderr is a terminal too", () => {
    const err = written(process.stderr);
    const out = written(process.stdout);
    note(outputFor(true, {}, true), "quiet");
    Object.defineProperty(process.stderr, "isTTY", { value: false, configurable: true });
    note(terminal, "stderr piped");
    Object.defineProperty(process.stderr, "isTTY", { value: true, configurable: true });
    note(terminal, "both terminals");
    note(plainTerminal, "NO_COLOR", "red");
    expect(err).toEqual(["stderr piped\n", "\u001b[33mboth terminals\u001b[39m\n", "NO_COLOR\n"]);
    expect(out).toEqual([]);
  });
});
