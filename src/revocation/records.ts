import { z } from "zod";
import type { RevocationRow } from "../change-feed/changes.js";
import type { RevocationRecord } from "./state.js";

const SELECTORS = ["jti", "agent", "grant", "upstream", "environment", "issued_before", "all", "kill_switch"] as const;

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
