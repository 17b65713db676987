import type { PrismaClient } from "@prisma/client";
import type { RowChange } from "../change-feed/changes.js";
import type { ChangeFeed, ChangeFollower } from "../change-feed/feed.js";
import { CACHE_REFRESH_MS } from "../change-feed/row-cache.js";

/** Where an upstream lives, as the forward proxy matches requests against it. */
export type UpstreamOrigin = {
  upstream: string;
  scheme: "http:" | "https:";
  /** Lower-case DNS name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** The base URL's path without a trailing slash; "" for the root. */
  basePath: string;
};

/** A request matched to an upstream: the `/proxy/<upstream>` route's own target for it. */
export type ForwardMatch = { upstream: string; proxyPath: string };

const DEFAULT_PORT = { "http:": 80, "https:": 443 } as const;

export function originOf(upstream: string, baseUrl: string): UpstreamOrigin | null {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return {
    upstream,
    scheme: url.protocol,
    host: url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase(),
    port: url.port ? Number(url.port) : DEFAULT_PORT[url.protocol],
    basePath: url.pathname.replace(/\/+$/, ""),
  };
}

const key = (scheme: string, host: string, port: number) => `${scheme}//${host}:${port}`;

/**
 * Every upstream's origin, compiled once from the stored base URLs: which hosts the forward proxy
 * serves at all, and which upstream a request is for. Anything no upstream names matches nothing.
 */
export class HostIndex {
  readonly #byOrigin = new Map<string, UpstreamOrigin[]>();
  /** The hosts of the https upstreams, sorted, each once: the names the forward proxy's CA may vouch for. */
  readonly tlsHosts: readonly string[];

  constructor(origins: readonly UpstreamOrigin[]) {
    this.tlsHosts = [...new Set(origins.filter((o) => o.scheme === "https:").map((o) => o.host))].sort();
    for (const origin of origins) {
      const k = key(origin.scheme, origin.host, origin.port);
      const list = this.#byOrigin.get(k) ?? [];
      list.push(origin);
      // Longest base path first: the most specific upstream wins.
      list.sort((a, b) => b.basePath.length - a.basePath.length);
      this.#byOrigin.set(k, list);
    }
  }

  /** Whether some upstream lives at this scheme, host and port (what a CONNECT may reach). */
  hasOrigin(scheme: "http:" | "https:", host: string, port: number): boolean {
    return this.#byOrigin.has(key(scheme, host.toLowerCase(), port));
  }

  /**
   * The upstream a request for `rawTarget` (origin-form path and query, as sent) at this origin goes to,
   * and the path under `/proxy/<upstream>` that reaches the same URL; null if no upstream's base path
   * contains it. The path is compared as sent, before any decoding: the proxy route normalises it after.
   */
  match(scheme: "http:" | "https:", host: string, port: number, rawTarget: string): ForwardMatch | null {
    if (!rawTarget.startsWith("/")) return null;
    const candidates = this.#byOrigin.get(key(scheme, host.toLowerCase(), port));
    if (!candidates) return null;
    const queryAt = rawTarget.indexOf("?");
    const path = queryAt === -1 ? rawTarget : rawTarget.slice(0, queryAt);
    const query = queryAt === -1 ? "" : rawTarget.slice(queryAt);
    for (const origin of candidates) {
      if (origin.basePath === "" || path === origin.basePath || path.startsWith(origin.basePath + "/")) {
        const rest = path.slice(origin.basePath.length) || "/";
        return { upstream: origin.upstream, proxyPath: `/proxy/${origin.upstream}${rest}${query}` };
      }
    }
    return null;
  }
}

/**
 * The host index of the upstreams as stored now: compiled once per change, which the change feed
 * announces (an upstream's trigger, migration 0005); read afresh while the feed cannot vouch for it.
 */
export class UpstreamHosts implements ChangeFollower<RowChange> {
  readonly tables = ["Upstream"] as const;
  readonly refreshMs = CACHE_REFRESH_MS;
  #index: Promise<HostIndex> | null = null;

  constructor(
    private readonly prisma: Pick<PrismaClient, "upstream">,
    private readonly feed: Pick<ChangeFeed, "isCurrent" | "follow">,
  ) {
    feed.follow(this);
  }

  current(): Promise<HostIndex> {
    if (!this.feed.isCurrent()) return this.#read();
    if (!this.#index) {
      const reading = this.#read();
      this.#index = reading;
      reading.catch(() => {
        if (this.#index === reading) this.#index = null;
      });
    }
    return this.#index;
  }

  changed(): void {
    this.#index = null;
  }

  async reload(): Promise<void> {
    this.#index = null;
  }

  async refresh(): Promise<void> {
    this.#index = null;
  }

  async #read(): Promise<HostIndex> {
    const rows = await this.prisma.upstream.findMany({ select: { name: true, baseUrl: true } });
    return new HostIndex(rows.map((row) => originOf(row.name, row.baseUrl)).filter((o): o is UpstreamOrigin => o !== null));
  }
}
