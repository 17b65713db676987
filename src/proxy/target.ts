/** The parts of a proxied request's raw target, before any decoding. */
export type ProxyTarget = { upstream: string; rawPath: string; rawQuery: string };

const PREFIX = "/proxy/";

/**
 * Splits `/proxy/<upstream><path>?<query>` taken from the raw request line, so that no router decoding
 * happens before the policy's own normalisation. Absolute-form targets (`GET http://host/...`) and
 * anything else not under /proxy/ are refused by returning null.
 */
export function parseProxyTarget(rawUrl: string): ProxyTarget | null {
  if (!rawUrl.startsWith(PREFIX)) return null;
  const queryAt = rawUrl.indexOf("?");
  const pathPart = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  const rawQuery = queryAt === -1 ? "" : rawUrl.slice(queryAt + 1);
  const rest = pathPart.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  const upstream = slash === -1 ? rest : rest.slice(0, slash);
  const rawPath = slash === -1 ? "/" : rest.slice(slash);
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(upstream)) return null;
  return { upstream, rawPath, rawQuery };
}
