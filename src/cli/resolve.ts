import { CliError, type AdminApi } from "./connection.js";

/** Agents and grants are addressed by id in the API; the CLI takes their names too. */
export async function idOf(api: AdminApi, kind: "agents" | "grants", ref: string): Promise<string> {
  const answer = await api.json<Record<string, { id: string; name: string }[]>>("GET", `/v1/${kind}`);
  const match = answer[kind]!.find((item) => item.id === ref) ?? answer[kind]!.find((item) => item.name === ref);
  if (!match) throw new CliError(`no ${kind.slice(0, -1)} named ${ref}`);
  return match.id;
}
