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

/**
 * The operations a call ran (details.operations, src/policy/operations.ts), each once with how many
 * times it ran, in order of first appearance: `aws-s3.DeleteObject ×1000`, `mutation volumeDelete`.
 */
export function operationsSummary(details: Details): string[] {
  const operations = details?.operations;
  if (!Array.isArray(operations)) return [];
  const counts = new Map<string, number>();
  for (const op of operations) if (typeof op === "string") counts.set(op, (counts.get(op) ?? 0) + 1);
  return [...counts].map(([op, count]) => (count > 1 ? `${op} ×${count}` : op));
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
