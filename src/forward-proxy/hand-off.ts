import type { IncomingHttpHeaders } from "node:http";
import { carriesPlaceholder } from "./placeholders.js";

/**
 * Headers the forward proxy removes before handing a request to the `/proxy/` route: its own
 * (Proxy-Authorization, Proxy-Connection) and the agent's Authorization, which in transparent mode holds
 * a placeholder or whatever the client found (the proxy route never forwards it either). Keyward's
 * bearer takes its place.
 */
const REPLACED = new Set(["authorization", "proxy-authorization", "proxy-connection"]);

const dropped = (name: string, value: string | string[] | undefined) =>
  REPLACED.has(name) || (value !== undefined && (Array.isArray(value) ? value : [value]).some(carriesPlaceholder));

/**
 * The request's headers, parsed and raw, as the `/proxy/` route must see them: authenticated by `token`,
 * and without any header carrying a placeholder credential (src/forward-proxy/placeholders.ts).
 */
export function handOffHeaders(
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  token: string,
): { headers: IncomingHttpHeaders; rawHeaders: string[] } {
  const bearer = `Bearer ${token}`;
  const parsed: IncomingHttpHeaders = {};
  const droppedNames = new Set<string>(REPLACED);
  for (const [name, value] of Object.entries(headers)) {
    if (dropped(name, value)) droppedNames.add(name);
    else parsed[name] = value;
  }
  parsed.authorization = bearer;
  const raw: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!droppedNames.has(rawHeaders[i]!.toLowerCase())) raw.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  raw.push("Authorization", bearer);
  return { headers: parsed, rawHeaders: raw };
}
