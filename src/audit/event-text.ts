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
