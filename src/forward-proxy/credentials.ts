/**
 * The agent token a forward-proxy request authenticates with, from its one Proxy-Authorization header:
 * `Bearer <token>`, or `Basic base64(<anything>:<token>)`, which is what a proxy URL of the form
 * `http://agent:<token>@host:port` makes clients send. Null when there is none, more than one, or it is
 * in neither form; the token itself is verified by the caller.
 */
export function proxyAuthorizationToken(rawHeaders: readonly string[]): string | null {
  let value: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "proxy-authorization") continue;
    if (value !== null) return null;
    value = rawHeaders[i + 1] ?? "";
  }
  if (value === null) return null;
  const bearer = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(value);
  if (bearer) return bearer[1]!;
  const basic = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(value);
  if (!basic) return null;
  const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const password = colon === -1 ? "" : decoded.slice(colon + 1);
  return /^[A-Za-z0-9\-._~+/]+=*$/.test(password) ? password : null;
}

/**
 * `host:port` of a CONNECT request target (RFC 9110 §9.3.6: authority-form, port required); IPv6 in
 * brackets. Null for anything else: userinfo, a path, a missing or out-of-range port.
 */
export function parseAuthority(target: string): { host: string; port: number } | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(target);
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  const host = (match[1] ?? match[2]!).toLowerCase();
  if (host.endsWith(".") || host.startsWith(".") || host.includes("..")) return null;
  return { host, port };
}
