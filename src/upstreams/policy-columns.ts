import { badRequest } from "../http/errors.js";
import { upstreamPresets, type Protocol } from "../policy/rules.js";

/** Protocol and protection presets to store for an upstream; presets that do not fit the protocol are refused (400). */
export function upstreamPolicyColumns(baseUrl: string, protocol: Protocol, presets: readonly string[] | undefined) {
  const resolved = upstreamPresets(baseUrl, protocol, presets);
  if (resolved.problems.length > 0) throw badRequest("policy_misfit", "the upstream's presets do not fit its protocol", resolved.problems);
  return { protocol, presets: resolved.presets };
}
