/**
 * The parts of a proxied request's target: upstream and path raw, before any decoding; the query as it
 * is sent upstream (see queryAsSent).
 */
export type ProxyTarget = { upstream: string; rawPath: string; query: string };

const PREFIX = "/proxy/";

// What a URL's query keeps as it is (WHATWG URL, special schemes): printable ASCII but space, ", #, ' , < and >.
const QUERY_AS_IS = /^[!$-&(-;=?-~]*$/;

/**
 * The query exactly as the upstream receives it, so that the policy decides on the bytes that are sent
 * and on nothing else. The forwarder writes it as a URL would hold it: a leading `?` (`/x??_method=x`)
 * is dropped, and ", #, ', < and > are escaped. A query of characters a URL keeps as they are (nearly
 * every one) is taken as it is, with no URL built for it.
 */
export function queryAsSent(rawQuery: string): string {
  if (rawQuery === "" || (QUERY_AS_IS.test(rawQuery) && rawQuery[0] !== "?")) return rawQuery;
  const url = new URL("http://q/");
  url.search = rawQuery;
  return url.search.slice(1);
}

/**
 * Splits `/proxy/<upstream><path>?<query>` taken from the raw request line, so that no router decoding
 * happens before the policy's own normalisation. Absolute-form targets (`GET http://host/...`) and
 * anything else not under /proxy/ are refused by returning null.
 */
export function parseProxyTarget(rawUrl: string): ProxyTarget | null {
  if (!rawUrl.startsWith(PREFIX)) return null;
  const queryAt = rawUrl.indexOf("?");
  const pathPart = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  const rest = pathPart.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  const upstream = slash === -1 ? rest : rest.slice(0, slash);
  const rawPath = slash === -1 ? "/" : rest.slice(slash);
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(upstream)) return null;
  return { upstream, rawPath, query: queryAt === -1 ? "" : queryAsSent(rawUrl.slice(queryAt + 1)) };
}
