/**
 * What a person reads of an audit event beyond its columns, shared by `keyward audit` and the console:
 * the names it was made under and the operations it ran, from its details.
 */

type Details = Record<string, unknown> | null | undefined;

/** The agent's and grant's names recorded with the event (src/audit/audit.ts: `names`), if any. */
export function recordedNames(details: Details): { agent?: string; grant?: string } {
  const names = details?.names;
  if (typeof names !== "object" || names === null) return {};
  const { agent, grant } = names as Record<string, unknown>;
  return { ...(typeof agent === "string" && { agent }), ...(typeof grant === "string" && { grant }) };
}

/** Each operation once, with how many times it ran when more than once, in order of first appearance. */
function counted(operations: Iterable<string>): string[] {
  const counts = new Map<string, number>();
  for (const op of operations) counts.set(op, (counts.get(op) ?? 0) + 1);
  return [...counts].map(([op, count]) => (count > 1 ? `${op} ×${count}` : op));
}

/**
 * The operations a call ran (details.operations), each once with how many times it ran, in order of
 * first appearance: `aws-s3.DeleteObject ×1000`, `mutation volumeDelete`. Events recorded before the
 * list was stored counted (recordedOperations) hold every operation: they read the same.
 */
export function operationsSummary(details: Details): string[] {
  const operations = details?.operations;
  if (!Array.isArray(operations)) return [];
  return counted(operations.filter((op): op is string => typeof op === "string"));
}

/**
 * The most distinct operations an allow event names, and the most characters of each name. A JSON-RPC
 * batch or a GraphQL document of up to the inspection limit (1 MiB) names tens of thousands, each as long
 * as the agent likes: listed whole, one call's event outweighed its body and went through the spool, the
 * hash and the database as such.
 */
const RECORDED_OPERATIONS_MAX = 100;
const RECORDED_OPERATION_LENGTH_MAX = 300;

/**
 * What an allow event records of the operations a call runs (src/policy/decide.ts names them), bounded
 * whatever the agent sent: each name once with its count, cut to RECORDED_OPERATION_LENGTH_MAX
 * characters, the first RECORDED_OPERATIONS_MAX of them, then how many more there were.
 */
export function recordedOperations(operations: readonly string[]): { operations: string[] } | undefined {
  if (operations.length === 0) return undefined;
  const cut = (op: string) => (op.length > RECORDED_OPERATION_LENGTH_MAX ? `${op.slice(0, RECORDED_OPERATION_LENGTH_MAX)}…` : op);
  const listed = counted(operations.map(cut));
  if (listed.length <= RECORDED_OPERATIONS_MAX) return { operations: listed };
  return { operations: [...listed.slice(0, RECORDED_OPERATIONS_MAX), `… ${listed.length - RECORDED_OPERATIONS_MAX} more`] };
}

/**
 * Characters that change how the text around them reads without being seen: bidirectional overrides,
 * embeddings, isolates and marks, and zero-width characters. An agent's path or method name holding
 * U+202E shows `invoice<U+202E>fdp.exe` as `invoiceexe.pdf` and reverses what follows it on the line (the
 * status, the reason); one holding U+200B shows `ad<U+200B>min` as `admin`. Stored as sent (they are the
 * agent's bytes, and the chain hashes them), they are shown escaped wherever a person reads an event.
 */
const INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** A UTF-16 code unit as the visible JSON-style escape `\uXXXX`: how event text shows what it must not apply. */
export const escapedCodeUnit = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Event text as a person should read it: each character of INVISIBLE as a visible `\uXXXX`. */
export function visibleText(text: string): string {
  return text.replace(INVISIBLE, escapedCodeUnit);
}

/** A JSON value with every string in it as visibleText: for what leaves Keyward for a person to read (chat-ops). */
export function visibleStrings<T>(value: T): T {
  if (typeof value === "string") return visibleText(value) as T;
  if (Array.isArray(value)) return value.map(visibleStrings) as T;
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, visibleStrings(inner)])) as T;
  }
  return value;
}
