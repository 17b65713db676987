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

/**
 * Whether the query names `_method`, the parameter Symfony, Express's method-override and others turn
 * into the request's method: a POST the policy allowed could then act as a DELETE it denies. Checked on
 * the decoded names, in any case.
 */
export function hasMethodOverrideParam(rawQuery: string): boolean {
  if (!/_|%5f/i.test(rawQuery)) return false;
  return rawQuery.split("&").some((pair) => {
    const name = pair.split("=", 1)[0]!.replace(/\+/g, " ");
    let decoded: string;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      decoded = name;
    }
    return decoded.trim().toLowerCase().replace(/\[\]$/, "") === "_method";
  });
}
