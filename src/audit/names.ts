import type { Agents } from "../agents/agents.js";
import type { Grants } from "../grants/grants.js";
import type { EventNames } from "./audit.js";

export type NameLookups = { agents: Pick<Agents, "nameOf">; grants: Pick<Grants, "nameOf"> };

/** The names an event about this agent and grant is made under; one that no longer exists is left out. */
export async function eventNames(lookups: NameLookups, ids: { agentId: string; grantId?: string }): Promise<EventNames> {
  const [agent, grant] = await Promise.all([lookups.agents.nameOf(ids.agentId), ids.grantId === undefined ? null : lookups.grants.nameOf(ids.grantId)]);
  return { ...(agent !== null && { agent }), ...(grant !== null && { grant }) };
}
