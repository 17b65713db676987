import { z } from "zod";

/**
 * The one channel every change the in-memory state depends on is announced on, in commit order: each
 * Revocation insert and update (migration 0002), each changed row of a cached table (migration 0005 and
 * later), and each replica's pings. The name is older than the feed and kept, since the triggers use it.
 */
export const CHANGE_CHANNEL = "keyward_revocation";

/** Tables whose rows are held in memory, as their triggers name them (a GrantAgent change names its Grant). */
export const CACHED_TABLES = ["Grant", "Upstream", "Environment", "Agent", "ForwardProxyCa"] as const;
export type CachedTable = (typeof CACHED_TABLES)[number];

/** A Revocation row as stored, read from the table or from its change notification. */
export type RevocationRow = {
  id: string;
  selector: string;
  value: string;
  createdAt: Date;
  expiresAt: Date | null;
  lifted: boolean;
};

/** A revocation was written or lifted: the whole row travels, since the state applies it without a read. */
export type RevocationChange = { table: "Revocation"; row: RevocationRow };
/** A cached table's row changed: `key` names it as its cache does (null: every row, e.g. a TRUNCATE). */
export type RowChange = { table: CachedTable; key: string | null };
export type Change = RevocationChange | RowChange;

const revocationPayload = z.object({
  schema: z.string(),
  id: z.string(),
  selector: z.string(),
  value: z.string(),
  createdAtMs: z.number(),
  expiresAtMs: z.number().nullable(),
  lifted: z.boolean(),
});
// A ping may carry a barrier (answer me once you have applied everything before this) or the answer to
// one; a version that knows neither still reads it as another replica's ping, and ignores it.
const pingPayload = z.object({ schema: z.string(), ping: z.string(), sentAt: z.number(), barrier: z.string().optional(), ack: z.string().optional() });
const rowChangePayload = z.object({ schema: z.string(), table: z.string(), key: z.string().nullable() });

export type Notification =
  | { type: "change"; change: Change }
  | { type: "ping"; replica: string; sentAt: number; barrier?: string; ack?: string }
  /** A table this version caches nothing of (a newer replica's): nobody here must drop anything. */
  | { type: "uncached-table" }
  | { type: "other-schema" }
  | { type: "unreadable" };

const isCachedTable = (table: string): table is CachedTable => (CACHED_TABLES as readonly string[]).includes(table);

/** Parses a payload from the change channel: a change (from a trigger) or a replica's ping. */
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
  if (ping.success) {
    const { ping: replica, sentAt, barrier, ack } = ping.data;
    return { type: "ping", replica, sentAt, ...(barrier !== undefined && { barrier }), ...(ack !== undefined && { ack }) };
  }
  const rowChange = rowChangePayload.safeParse(json);
  if (rowChange.success) {
    const { table, key } = rowChange.data;
    return isCachedTable(table) ? { type: "change", change: { table, key } } : { type: "uncached-table" };
  }
  const revocation = revocationPayload.safeParse(json);
  if (!revocation.success) return { type: "unreadable" };
  const { createdAtMs, expiresAtMs, schema: _schema, ...row } = revocation.data;
  const stored = { ...row, createdAt: new Date(createdAtMs), expiresAt: expiresAtMs === null ? null : new Date(expiresAtMs) };
  return { type: "change", change: { table: "Revocation", row: stored } };
}

export const pingPayloadOf = (schema: string, replica: string, sentAt: number, signal: { barrier: string } | { ack: string } | object = {}) =>
  JSON.stringify({ schema, ping: replica, sentAt, ...signal });
