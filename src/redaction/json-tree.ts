/**
 * A JSON document as a tree of byte-exact positions, so that redaction replaces only the selected values
 * and leaves every other byte as the upstream sent it (re-serialising would round large numbers and
 * reorder nothing useful). Pure.
 */

export type JsonNode =
  | { kind: "object"; entries: [key: string, value: JsonNode][] }
  | { kind: "array"; items: JsonNode[] }
  /** A string or a number: what a redaction replaces. `start`/`end` index the text. */
  | { kind: "leaf"; start: number; end: number }
  /** true, false, null: nothing to hide. */
  | { kind: "literal" };

/** Deeper documents are refused as unredactable rather than walked recursively without end. */
export const MAX_JSON_DEPTH = 1000;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The tree of a JSON text, or null when it is not JSON (or nests deeper than MAX_JSON_DEPTH). The text is
 * first checked by JSON.parse, so the walk below can trust its grammar.
 */
export function parseJsonTree(text: string): JsonNode | null {
  try {
    JSON.parse(text);
  } catch {
    return null;
  }
  let at = 0;
  const skipSpace = () => {
    while (WHITESPACE.has(text.charCodeAt(at))) at++;
  };
  const stringEnd = (from: number) => {
    let i = from + 1;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    return i + 1;
  };
  const value = (depth: number): JsonNode | null => {
    if (depth > MAX_JSON_DEPTH) return null;
    skipSpace();
    const c = text[at];
    if (c === "{") {
      at++;
      const entries: [string, JsonNode][] = [];
      skipSpace();
      if (text[at] === "}") {
        at++;
        return { kind: "object", entries };
      }
      for (;;) {
        skipSpace();
        const keyEnd = stringEnd(at);
        const key = JSON.parse(text.slice(at, keyEnd)) as string;
        at = keyEnd;
        skipSpace();
        at++; // ':'
        const member = value(depth + 1);
        if (!member) return null;
        entries.push([key, member]);
        skipSpace();
        if (text[at++] === "}") return { kind: "object", entries };
      }
    }
    if (c === "[") {
      at++;
      const items: JsonNode[] = [];
      skipSpace();
      if (text[at] === "]") {
        at++;
        return { kind: "array", items };
      }
      for (;;) {
        const item = value(depth + 1);
        if (!item) return null;
        items.push(item);
        skipSpace();
        if (text[at++] === "]") return { kind: "array", items };
      }
    }
    const start = at;
    if (c === '"') {
      at = stringEnd(at);
      return { kind: "leaf", start, end: at };
    }
    while (at < text.length && !WHITESPACE.has(text.charCodeAt(at)) && !",]}".includes(text[at]!)) at++;
    return c === "t" || c === "f" || c === "n" ? { kind: "literal" } : { kind: "leaf", start, end: at };
  };
  return value(0);
}

/** Every string and number inside a node: what redacting it replaces. */
export function leavesOf(node: JsonNode, into: JsonNode[] = []): JsonNode[] {
  if (node.kind === "leaf") into.push(node);
  else if (node.kind === "object") for (const [, child] of node.entries) leavesOf(child, into);
  else if (node.kind === "array") for (const child of node.items) leavesOf(child, into);
  return into;
}

/** The text with each given leaf replaced by `replacement` (a JSON string literal); each leaf once. */
export function replaceLeaves(text: string, leaves: Iterable<JsonNode>, replacement: string): { text: string; count: number } {
  const starts = new Map<number, number>();
  for (const leaf of leaves) if (leaf.kind === "leaf") starts.set(leaf.start, leaf.end);
  if (starts.size === 0) return { text, count: 0 };
  const ordered = [...starts].sort((a, b) => a[0] - b[0]);
  const parts: string[] = [];
  let from = 0;
  for (const [start, end] of ordered) {
    parts.push(text.slice(from, start), replacement);
    from = end;
  }
  parts.push(text.slice(from));
  return { text: parts.join(""), count: ordered.length };
}
