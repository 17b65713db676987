import type { IssuedToken, PrismaClient } from "@prisma/client";
import { readRevocationState } from "../revocation/service.js";
import { MAX_EXCHANGE_DEPTH } from "./claims.js";

export type LiveTokenFilter = { agentId?: string; grantId?: string };

export type LiveToken = {
  jti: string;
  agent: { id: string; name: string | null };
  grant: { id: string; name: string | null };
  upstream: string;
  /** The upstream's environment now; null if the upstream is gone. */
  environment: string | null;
  methods: string[];
  paths: string[];
  parentJti: string | null;
  issuedAt: string;
  expiresAt: string;
  /** Proxied calls decided so far under this token. */
  calls: { allowed: number; denied: number };
};

const seconds = (date: Date) => Math.floor(date.getTime() / 1000);

/**
 * Issued tokens that would still be accepted now: not expired, and not revoked by any revocation in the
 * database (by jti, an ancestor's jti, agent, grant, upstream, environment, issue time or all), judged by
 * the same RevocationState the proxy checks. The kill switch freezes tokens without revoking them, so
 * they are listed while it is engaged. Newest first.
 */
export async function listLiveTokens(prisma: PrismaClient, filter: LiveTokenFilter, now = new Date()): Promise<LiveToken[]> {
  const [rows, revocations] = await Promise.all([
    prisma.issuedToken.findMany({ where: { ...filter, expiresAt: { gt: now } }, orderBy: [{ issuedAt: "desc" }, { jti: "asc" }] }),
    readRevocationState(prisma, now),
  ]);
  const lineage = await lineageOf(prisma, rows);
  const environments = await environmentsOf(prisma, rows);
  const live = rows.filter((row) => {
    const { ancestors, root } = lineage(row);
    const facts = { ...row, issuedAt: seconds(row.issuedAt), ancestors, rootIssuedAt: seconds(root.issuedAt) };
    const environment = environments.get(row.upstream);
    return (
      revocations.reasonRevoked(facts) === null &&
      (environment === undefined || revocations.reasonEnvironmentRevoked(environment, facts) === null)
    );
  });
  const [agents, grants, calls] = await Promise.all([
    prisma.agent.findMany({ where: { id: { in: unique(live.map((t) => t.agentId)) } }, select: { id: true, name: true } }),
    prisma.grant.findMany({ where: { id: { in: unique(live.map((t) => t.grantId)) } }, select: { id: true, name: true } }),
    callCounts(prisma, live.map((t) => t.jti)),
  ]);
  const nameOf = (list: { id: string; name: string }[], id: string) => list.find((x) => x.id === id)?.name ?? null;
  return live.map((t) => ({
    jti: t.jti,
    agent: { id: t.agentId, name: nameOf(agents, t.agentId) },
    grant: { id: t.grantId, name: nameOf(grants, t.grantId) },
    upstream: t.upstream,
    environment: environments.get(t.upstream) ?? null,
    methods: t.methods,
    paths: t.paths,
    parentJti: t.parentJti,
    issuedAt: t.issuedAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    calls: calls.get(t.jti) ?? { allowed: 0, denied: 0 },
  }));
}

const unique = <T>(values: T[]) => [...new Set(values)];

/**
 * The exchange chain of each token (its ancestors' jtis, root first, and its root), as the token's own
 * `chain` and `root_iat` claims carry it. Parents outside `rows` (another agent's, or filtered out) are read.
 */
async function lineageOf(prisma: PrismaClient, rows: IssuedToken[]) {
  const byJti = new Map(rows.map((row) => [row.jti, row]));
  for (let depth = 0; depth < MAX_EXCHANGE_DEPTH; depth++) {
    const missing = unique([...byJti.values()].flatMap((row) => (row.parentJti && !byJti.has(row.parentJti) ? [row.parentJti] : [])));
    if (missing.length === 0) break;
    for (const parent of await prisma.issuedToken.findMany({ where: { jti: { in: missing } } })) byJti.set(parent.jti, parent);
  }
  return (row: IssuedToken) => {
    const ancestors: string[] = [];
    let root = row;
    for (let parent = row.parentJti; parent && ancestors.length < MAX_EXCHANGE_DEPTH; parent = root.parentJti) {
      ancestors.unshift(parent);
      const found = byJti.get(parent);
      if (!found) break;
      root = found;
    }
    return { ancestors, root };
  };
}

async function environmentsOf(prisma: PrismaClient, rows: IssuedToken[]): Promise<Map<string, string>> {
  const upstreams = await prisma.upstream.findMany({
    where: { name: { in: unique(rows.map((t) => t.upstream)) } },
    select: { name: true, environment: true },
  });
  return new Map(upstreams.map((u) => [u.name, u.environment]));
}

/** Proxied calls per token, from the audit log's `proxy` decisions. */
async function callCounts(prisma: PrismaClient, jtis: string[]): Promise<Map<string, { allowed: number; denied: number }>> {
  const counts = new Map<string, { allowed: number; denied: number }>();
  if (jtis.length === 0) return counts;
  const groups = await prisma.auditEvent.groupBy({
    by: ["jti", "decision"],
    where: { kind: "proxy", jti: { in: jtis } },
    _count: { _all: true },
  });
  for (const group of groups) {
    const entry = counts.get(group.jti!) ?? { allowed: 0, denied: 0 };
    if (group.decision === "allow") entry.allowed += group._count._all;
    else entry.denied += group._count._all;
    counts.set(group.jti!, entry);
  }
  return counts;
}
