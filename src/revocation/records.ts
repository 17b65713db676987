import { z } from "zod";
import type { RevocationRecord } from "./state.js";

/**
 * The channel every Revocation change and every replica's ping is announced on (migration 0002), and
 * changes to the rows the in-memory caches hold (grants, upstreams, environments, agents: migration 0005).
 */
export const REVOCATION_CHANNEL = "keyward_revocation";

const SELECTORS = ["jti", "agent", "grant", "upstream", "environment", "issued_before", "all", "kill_switch"] as const;

/** A Revocation row, read from the table or from a change notification. */
type RevocationRow = {
  id: string;
  selector: string;
  value: string;
  createdAt: Date;
  expiresAt: Date | null;
  lifted: boolean;
};

/**
 * A stored row as the in-memory state needs it. A selector this version does not know (a newer replica's,
 * during a rolling upgrade) cannot be honoured, so it throws: the load fails and the replica goes stale,
 * failing closed, rather than ignoring a revocation.
 */
export function recordOf(row: RevocationRow): RevocationRecord {
  const selector = z.enum(SELECTORS).parse(row.selector);
  if (selector === "kill_switch") return { selector, id: row.id, lifted: row.lifted };
  return { selector, value: row.value, revokedAt: row.createdAt, expiresAt: row.expiresAt };
}

const changePayload = z.object({
  schema: z.string(),
  id: z.string(),
  selector: z.string(),
  value: z.string(),
  createdAtMs: z.number(),
  expiresAtMs: z.number().nullable(),
  lifted: z.boolean(),
});
const pingPayload = z.object({ schema: z.string(), ping: z.string(), sentAt: z.number() });
/** A cached table's row changed: `key` names it as its cache does (null: every row, e.g. a TRUNCATE). */
const rowChangePayload = z.object({ schema: z.string(), table: z.string(), key: z.string().nullable() });

export type Notification =
  | { type: "change"; record: RevocationRecord }
  | { type: "row-change"; table: string; key: string | null }
  | { type: "ping"; replica: string; sentAt: number }
  | { type: "other-schema" }
  | { type: "unreadable" };

/** Parses a payload from the revocation channel: a change (from a trigger) or a replica's ping. */
export function parseNotification(payload: string, schema: string): Notification {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    return { type: "unreadable" };
  }
  const owner = z.object({ schema: z.string() }).safeParse(json);
  if (owner.success && owner.data.schema !== schema) return { type: "other-schema" };
  const ping = pingPayload.safeParse(json);
  if (ping.success) return { type: "ping", replica: ping.data.ping, sentAt: ping.data.sentAt };
  const rowChange = rowChangePayload.safeParse(json);
  if (rowChange.success) return { type: "row-change", table: rowChange.data.table, key: rowChange.data.key };
  const change = changePayload.safeParse(json);
  if (!change.success) return { type: "unreadable" };
  const c = change.data;
  try {
    const record = recordOf({
      ...c,
      createdAt: new Date(c.createdAtMs),
      expiresAt: c.expiresAtMs === null ? null : new Date(c.expiresAtMs),
    });
    return { type: "change", record };
  } catch {
    return { type: "unreadable" };
  }
}

export const pingPayloadOf = (schema: string, replica: string, sentAt: number) =>
  JSON.stringify({ schema, ping: replica, sentAt });
