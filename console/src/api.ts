import { readEventStream } from "./event-stream";

/**
 * The console's only way to the broker: Keyward's admin REST API on this origin, with the signed-in admin
 * key in the Authorization header (never in a URL). The server checks every call's permission; the
 * console merely hides what the key's role may not do.
 */

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];
export type Role = "admin" | "security" | "auditor";
export type Permission = "manage" | "revoke" | "read_audit" | "introspect" | "approve";
export type Me = { id: string; name: string; role: Role; permissions: Permission[] };

export type Named = { id: string; name: string | null };
type NamedList = { id: string; name: string }[];
export type Directory = { agents: NamedList; grants: NamedList; adminKeys: NamedList };
export type LiveToken = {
  jti: string;
  agent: Named;
  grant: Named;
  upstream: string;
  environment: string | null;
  methods: string[];
  paths: string[];
  parentJti: string | null;
  issuedAt: string;
  expiresAt: string;
  calls: { allowed: number; denied: number };
};
export type RevocationTarget = { jti: string } | { agentId: string } | { grantId: string };

export type KillSwitch = { engaged: boolean; engagedAt: string | null; engagedBy: string | null; reason: string | null };

export type Agent = {
  id: string;
  name: string;
  description: string | null;
  clientId: string;
  previousSecretExpiresAt: string | null;
  jwks: { keys: { kid?: string; alg?: string }[] };
  createdAt: string;
};

export type Upstream = {
  id: string;
  name: string;
  baseUrl: string;
  environment: string;
  protocol: "http" | "graphql" | "jsonrpc";
  presets: string[];
  auth: { type: string };
  secret: { set: boolean; updatedAt: string };
  createdAt: string;
  updatedAt: string;
};

export type HttpRule = { method?: HttpMethod; path?: string };
type Tags = { destructive?: boolean; requiresApproval?: boolean };
export type GraphqlRule = { operation?: "query" | "mutation" | "subscription"; field?: string };
export type JsonRpcRule = { method: string };
export type BudgetLimits = { requestsPerMinute?: number; maxCalls?: number; maxDestructiveCalls?: number };
export type Grant = {
  id: string;
  name: string;
  upstream: string;
  agents: string[];
  methods: HttpMethod[];
  paths: string[];
  deny: HttpRule[];
  maxTtlSeconds: number;
  environments: string[];
  requiresApproval: boolean;
  destructive: HttpRule[];
  requiresApprovalFor: HttpRule[];
  graphql: { allow: (GraphqlRule & Tags)[]; deny: GraphqlRule[] } | null;
  jsonrpc: { allow: (JsonRpcRule & Tags)[]; deny: JsonRpcRule[] } | null;
  allowProtected: string[];
  budgets: { perToken?: BudgetLimits; perGrant?: BudgetLimits } | null;
  createdAt: string;
  updatedAt: string;
};
export type NewGrant = Pick<Grant, "name" | "agents" | "upstream" | "methods" | "paths" | "deny" | "maxTtlSeconds" | "requiresApproval">;

export type Simulation = {
  allow: boolean;
  rule?: string;
  code?: string;
  reason?: string;
  destructive?: number;
  upstream: string;
  environment: string;
  path?: string;
  scope: string;
};
export type SimulationRequest = { grant: string; approved?: boolean; request: { method: string; url: string; body?: string } };

export type ApprovalStatus = "pending" | "approved" | "denied" | "issuing" | "issued" | "expired";
export type Approval = {
  approvalId: string;
  status: ApprovalStatus;
  agentId: string;
  grantId: string;
  upstream: string;
  environment: string;
  reasons: string[];
  protectedOperations: string[];
  capabilities: { methods?: string[]; paths?: string[]; ttlSeconds?: number };
  requestedBy: string;
  decidedBy: string | null;
  decidedAt: string | null;
  note: string | null;
  createdAt: string;
  expiresAt: string;
};

export type AuditEvent = {
  id: string;
  at: string;
  requestId: string | null;
  actor: string;
  kind: string;
  agentId: string | null;
  jti: string | null;
  grantId: string | null;
  upstream: string | null;
  environment: string | null;
  method: string | null;
  path: string | null;
  decision: "allow" | "deny" | null;
  reason: string | null;
  status: number | null;
  latencyMs: number | null;
  details: unknown;
};
/** GET /v1/audit's filters; `since` and `until` are ISO instants. */
export type AuditFilters = Partial<
  Record<"kind" | "decision" | "reason" | "agentName" | "grantName" | "agentId" | "grantId" | "jti" | "upstream" | "environment" | "method" | "pathPrefix" | "since" | "until", string>
>;
export type AuditPage = { events: AuditEvent[]; nextCursor: string | null };

export type ChainVerification = {
  ok: boolean;
  firstBroken: { at: string; id: string | number; reason: string } | null;
  checkedEvents: number;
  checkpoint: { id: number; at: string; throughId: string } | null;
  head: { id: string; hash: string };
};
export type ActivityMinute = { minute: string; allowed: number; denied: number };

/** A refusal from the API, in Keyward's error shape `{ error: { code, message, reason? } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly reason?: string,
  ) {
    super(reason ? `${message}: ${reason}` : message);
  }
}

type ErrorBody = { code: string; message: string; reason?: string; details?: unknown };

/** The reason, or for a validation failure which fields were refused and why. */
function reasonOf(error: ErrorBody): string | undefined {
  if (error.reason) return error.reason;
  if (!Array.isArray(error.details)) return undefined;
  const issues = (error.details as { path?: string; message?: string }[]).filter((d) => d.message);
  return issues.length > 0 ? issues.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join("; ") : undefined;
}

const query = (params: Record<string, string | number | undefined>) => {
  const entries = Object.entries(params).filter((entry): entry is [string, string | number] => entry[1] !== undefined && entry[1] !== "");
  return entries.length === 0 ? "" : "?" + new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString();
};

export function createApi(adminKey: string, onUnauthenticated: () => void) {
  async function send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const response = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, ...(body !== undefined && { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
    });
    if (response.ok) return response;
    const { error } = (await response.json().catch(() => ({}))) as { error?: ErrorBody };
    if (response.status === 401) onUnauthenticated();
    throw new ApiError(response.status, error?.code ?? "http_error", error?.message ?? response.statusText, error && reasonOf(error));
  }
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await send(method, path, body);
    return (response.status === 204 ? undefined : await response.json()) as T;
  };

  return {
    whoami: () => call<Me>("GET", "/v1/whoami"),
    directory: () => call<Directory>("GET", "/v1/directory"),

    liveTokens: async () => (await call<{ tokens: LiveToken[] }>("GET", "/v1/tokens")).tokens,
    revoke: (target: RevocationTarget, reason: string) => call<unknown>("POST", "/v1/revocations", { ...target, reason }),

    killSwitch: () => call<KillSwitch>("GET", "/v1/kill-switch"),
    engageKillSwitch: (reason: string) => call<KillSwitch>("POST", "/v1/kill-switch", { reason }),
    liftKillSwitch: (reason: string) => call<KillSwitch>("DELETE", "/v1/kill-switch", { reason }),

    agents: async () => (await call<{ agents: Agent[] }>("GET", "/v1/agents")).agents,
    upstreams: async () => (await call<{ upstreams: Upstream[] }>("GET", "/v1/upstreams")).upstreams,
    grants: async () => (await call<{ grants: Grant[] }>("GET", "/v1/grants")).grants,
    createGrant: (grant: NewGrant) => call<Grant>("POST", "/v1/grants", grant),
    deleteGrant: (id: string) => call<void>("DELETE", `/v1/grants/${encodeURIComponent(id)}`),
    simulate: (input: SimulationRequest) => call<Simulation>("POST", "/v1/policy/simulate", input),

    approvals: async (status?: ApprovalStatus) => (await call<{ approvals: Approval[] }>("GET", `/v1/approvals${query({ status })}`)).approvals,
    decideApproval: (id: string, verdict: "approve" | "deny", note: string) =>
      call<Approval>("POST", `/v1/approvals/${encodeURIComponent(id)}/${verdict}`, note ? { note } : {}),

    audit: (filters: AuditFilters, cursor?: string) => call<AuditPage>("GET", `/v1/audit${query({ ...filters, limit: 50, cursor })}`),
    verifyAudit: () => call<ChainVerification>("GET", "/v1/audit/verify"),
    activity: async (minutes: number) => (await call<{ minutes: ActivityMinute[] }>("GET", `/v1/audit/activity${query({ minutes })}`)).minutes,

    /**
     * Connects to the live tail; resolves once connected, with every event after `afterId` matching
     * `filters`, then each new one, until `signal` aborts or the server ends the stream.
     */
    async tailAudit(filters: AuditFilters, afterId: string, signal: AbortSignal): Promise<AsyncGenerator<AuditEvent>> {
      const response = await send("GET", `/v1/audit/stream${query({ ...filters, afterId })}`, undefined, signal);
      return (async function* () {
        for await (const event of readEventStream(response.body!)) {
          if (event.event === "audit") yield JSON.parse(event.data) as AuditEvent;
        }
      })();
    },
  };
}

export type Api = ReturnType<typeof createApi>;
