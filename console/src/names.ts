import { useConsole } from "./context";
import { shortId } from "./format";
import { useLoad } from "./hooks";

export type Names = {
  agentName: (id: string) => string;
  grantName: (id: string) => string;
  /** An audit actor (`agent:<id>`, `admin-key:<id>`) as a name. */
  actorName: (actor: string) => string;
};

/** Names for the ids that audit events, approvals and the kill switch carry (GET /v1/directory). */
export function useNames(): Names {
  const { api } = useConsole();
  const { data } = useLoad(() => api.directory(), [api]);
  const nameIn = (list: { id: string; name: string }[] | undefined) => (id: string) => list?.find((x) => x.id === id)?.name ?? shortId(id);
  const agentName = nameIn(data?.agents);
  const adminKeyName = nameIn(data?.adminKeys);
  return {
    agentName,
    grantName: nameIn(data?.grants),
    actorName: (actor) => {
      const [kind, id] = actor.split(":", 2);
      return kind === "agent" && id ? agentName(id) : kind === "admin-key" && id ? `${adminKeyName(id)} (admin key)` : actor;
    },
  };
}
