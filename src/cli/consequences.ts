import type { AdminApi } from "./connection.js";

/** GET /v1/tokens's entries, as far as a confirmation reads them (src/tokens/live.ts). */
export type LiveToken = { agent: { id: string; name: string | null }; grant: { id: string; name: string | null }; upstream: string; environment: string | null };

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;

/** Distinct values, sorted. */
const distinct = (values: string[]) => [...new Set(values)].sort();

/**
 * What revoking these tokens cuts off, for the question a destructive command asks on a terminal:
 * `3 live tokens (grants deploy-staging, reports)`, or `no live token`; `listing` the agents, the grants or both.
 */
export async function liveTokensCut(api: AdminApi, which: (token: LiveToken) => boolean, listing: "agents" | "grants" | "both"): Promise<string> {
  const { tokens } = await api.json<{ tokens: LiveToken[] }>("GET", "/v1/tokens");
  const cut = tokens.filter(which);
  if (cut.length === 0) return "no live token";
  const nameOf = (ref: { id: string; name: string | null }) => ref.name ?? ref.id;
  const agents = distinct(cut.map((t) => nameOf(t.agent)));
  const grants = distinct(cut.map((t) => nameOf(t.grant)));
  const parts = [listing !== "grants" && `agents ${agents.join(", ")}`, listing !== "agents" && `grants ${grants.join(", ")}`].filter(Boolean);
  return `${plural(cut.length, "live token")} (${parts.join("; ")})`;
}
