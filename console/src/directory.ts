import type { Agent, Grant } from "./api";
import { useConsole } from "./context";
import { shortId } from "./format";
import { useLoad } from "./hooks";

export type Directory = { agentName: (id: string) => string; grantName: (id: string) => string };

/**
 * Names for the agent and grant ids that audit events and approvals carry. Only keys that may `manage`
 * can list agents and grants; for the others the ids are shown, shortened.
 */
export function useDirectory(): Directory {
  const { api, can } = useConsole();
  const { data } = useLoad<{ agents: Agent[]; grants: Grant[] }>(
    async () => (can("manage") ? { agents: await api.agents(), grants: await api.grants() } : { agents: [], grants: [] }),
    [api],
  );
  const nameIn = (list: { id: string; name: string }[] | undefined) => (id: string) => list?.find((x) => x.id === id)?.name ?? shortId(id);
  return { agentName: nameIn(data?.agents), grantName: nameIn(data?.grants) };
}
