import type { IncomingHttpHeaders } from "node:http";

/**
 * Headers the forward proxy removes before handing a request to the `/proxy/` route: its own
 * (Proxy-Authorization, Proxy-Connection) and the agent's Authorization, which in transparent mode holds
 * a placeholder or whatever the client found (the proxy route never forwards it either). Keyward's
 * bearer takes its place.
 */
const REPLACED = new Set(["authorization", "proxy-authorization", "proxy-connection"]);

/** The request's headers, parsed and raw, as the `/proxy/` route must see them: authenticated by `token`. */
export function handOffHeaders(
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  token: string,
): { headers: IncomingHttpHeaders; rawHeaders: string[] } {
  const bearer = `Bearer ${token}`;
  const parsed: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!REPLACED.has(name)) parsed[name] = value;
  parsed.authorization = bearer;
  const raw: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!REPLACED.has(rawHeaders[i]!.toLowerCase())) raw.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  raw.push("Authorization", bearer);
  return { headers: parsed, rawHeaders: raw };
}
