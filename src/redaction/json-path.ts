import type { JsonNode } from "./json-tree.js";

/**
 * The small path syntax a `json` redaction rule selects values with (docs/redaction.md), a subset of
 * JSONPath:
 *
 *   $            the whole document
 *   .name        a member (letters, digits, `_`, `$`, `-`)
 *   ["name"]     a member by any name (JSON string syntax; single quotes also accepted)
 *   [0]          an array element
 *   [*] or .*    every element or member
 *   ..name       a member of that name at any depth below
 *
 * `$[*].value` selects the `value` of every element of a top-level array. Compiled once, when the grant
 * is written and when it is loaded; a selected object or array is redacted whole (its strings and numbers).
 */

export type JsonStep = { kind: "member"; name: string } | { kind: "index"; index: number } | { kind: "any" } | { kind: "descendant"; name: string };

export type JsonSelector = readonly JsonStep[];

const NAME = /^[A-Za-z0-9_$-]+/;
const QUOTED = /^\[\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\]/;
const INDEX = /^\[\s*(\d{1,9})\s*\]/;
const ANY = /^(?:\[\s*\*\s*\]|\.\*)/;

/** The steps of a selector, or the reason it is not one. */
export function compileJsonSelector(source: string): { ok: true; selector: JsonSelector } | { ok: false; reason: string } {
  if (!source.startsWith("$")) return { ok: false, reason: "a JSON path starts with $" };
  const steps: JsonStep[] = [];
  let rest = source.slice(1);
  while (rest.length > 0) {
    let m: RegExpExecArray | null;
    let consumed: number;
    if ((m = ANY.exec(rest))) {
      steps.push({ kind: "any" });
      consumed = m[0].length;
    } else if ((m = INDEX.exec(rest))) {
      steps.push({ kind: "index", index: Number(m[1]) });
      consumed = m[0].length;
    } else if ((m = QUOTED.exec(rest))) {
      steps.push({ kind: "member", name: unquote(m[1]!) });
      consumed = m[0].length;
    } else if (rest.startsWith("..") && (m = NAME.exec(rest.slice(2)))) {
      steps.push({ kind: "descendant", name: m[0] });
      consumed = 2 + m[0].length;
    } else if (rest.startsWith(".") && (m = NAME.exec(rest.slice(1)))) {
      steps.push({ kind: "member", name: m[0] });
      consumed = 1 + m[0].length;
    } else return { ok: false, reason: `unexpected ${JSON.stringify(rest.slice(0, 20))} in JSON path` };
    rest = rest.slice(consumed);
  }
  return { ok: true, selector: steps };
}

/** A bracketed name in JSON string syntax; single quotes are read as double quotes would be. Throws if it is not one. */
function unquote(quoted: string): string {
  if (quoted.startsWith('"')) return JSON.parse(quoted) as string;
  const inner = quoted.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"');
  return JSON.parse(`"${inner}"`) as string;
}

export const isValidJsonSelector = (source: string) => {
  try {
    return compileJsonSelector(source).ok;
  } catch {
    return false; // a quoted name that is not a JSON string
  }
};

/** Every node the selector selects in a tree (a node selected twice is listed twice). */
export function selectNodes(root: JsonNode, selector: JsonSelector): JsonNode[] {
  let current: JsonNode[] = [root];
  for (const step of selector) {
    const next: JsonNode[] = [];
    for (const node of current) stepFrom(node, step, next);
    current = next;
  }
  return current;
}

function stepFrom(node: JsonNode, step: JsonStep, into: JsonNode[]): void {
  switch (step.kind) {
    case "member":
      if (node.kind === "object") for (const [key, value] of node.entries) if (key === step.name) into.push(value);
      return;
    case "index":
      if (node.kind === "array" && step.index < node.items.length) into.push(node.items[step.index]!);
      return;
    case "any":
      if (node.kind === "object") for (const [, value] of node.entries) into.push(value);
      else if (node.kind === "array") into.push(...node.items);
      return;
    case "descendant":
      descendants(node, step.name, into);
  }
}

function descendants(node: JsonNode, name: string, into: JsonNode[]): void {
  const children = node.kind === "object" ? node.entries : node.kind === "array" ? node.items.map((item) => ["", item] as const) : [];
  for (const [key, child] of children) {
    if (node.kind === "object" && key === name) into.push(child);
    descendants(child, name, into);
  }
}
