import type { Prisma } from "@prisma/client";
import type { Agents } from "../agents/agents.js";
import type { Grants } from "../grants/grants.js";
import type { EventNames } from "./audit.js";

export type NameLookups = { agents: Pick<Agents, "nameOf">; grants: Pick<Grants, "nameOf"> };

/** The names an event about this agent and grant is made under; one that no longer exists is left out. */
export async function eventNames(lookups: NameLookups, ids: { agentId: string; grantId?: string }): Promise<EventNames> {
  // One after the other: both come from memory nearly always (every proxied call asks), where a
  // Promise.all and two spreads cost more than the lookups.
  const agent = await lookups.agents.nameOf(ids.agentId);
  const grant = ids.grantId === undefined ? null : await lookups.grants.nameOf(ids.grantId);
  const names: EventNames = {};
  if (agent !== null) names.agent = agent;
  if (grant !== null) names.grant = grant;
  return names;
}

/** The same, read from the database (or a transaction) where no cache is at hand: approval and revocation events. */
export async function storedNames(db: Pick<Prisma.TransactionClient, "agent" | "grant">, ids: { agentId?: string; grantId?: string }): Promise<EventNames> {
  const [agent, grant] = await Promise.all([
    ids.agentId === undefined ? null : db.agent.findUnique({ where: { id: ids.agentId }, select: { name: true } }),
    ids.grantId === undefined ? null : db.grant.findUnique({ where: { id: ids.grantId }, select: { name: true } }),
  ]);
  return { ...(agent && { agent: agent.name }), ...(grant && { grant: grant.name }) };
}
