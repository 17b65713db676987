import type { Prisma, PrismaClient } from "@prisma/client";
import { randomUUID } from "node:crypto";
import { contentHashOf, contentJson, PLAIN_ASCII } from "./chain.js";
import { escapedCodeUnit } from "./event-text.js";

export type AuditKind =
  | "proxy"
  | "proxy.response"
  | "token.issued"
  | "token.refused"
  | "revocation.created"
  | "revocation.refused"
  | "kill_switch.engaged"
  | "kill_switch.lifted"
  | "admin.change"
  | "approval.requested"
  | "approval.notified"
  | "approval.decided"
  | "approval.collected"
  | "audit.set_aside";

export type AuditInput = {
  kind: AuditKind;
  actor: string;
  requestId?: string;
  agentId?: string;
  jti?: string;
  grantId?: string;
  upstream?: string;
  environment?: string;
  method?: string;
  path?: string;
  decision?: "allow" | "deny";
  reason?: string;
  status?: number;
  latencyMs?: number;
  /** Never secrets: callers pass ids, names and non-secret settings only. */
  details?: Prisma.InputJsonValue;
  /**
   * The names the agent and grant had when the event was made, stored as `details.names`: the security
   * team reads an event by name even after its agent or grant is deleted or renamed. (`upstream` is a
   * name already: upstreams are never renamed.)
   */
  names?: EventNames;
};

export type EventNames = { agent?: string; grant?: string };

type AuditWriter = Pick<PrismaClient, "$executeRawUnsafe"> | Prisma.TransactionClient;

// C0 and C1 controls (NUL among them), DEL, and UTF-16 halves without their other half: what PostgreSQL
// refuses in text or JSONB (NUL, lone surrogates) or what would garble a terminal or a log line.
const UNSTORABLE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Agent-controlled text made storable: every character PostgreSQL might refuse (or a reader be misled by)
 * becomes a visible `\uXXXX` escape. Text without any (nearly all) is returned as it is.
 */
export function storable(text: string): string {
  if (!unstorableIn(text)) return text;
  return text.replace(UNSTORABLE, escapedCodeUnit);
}

function unstorableIn(text: string): boolean {
  UNSTORABLE.lastIndex = 0;
  return UNSTORABLE.test(text);
}

/** Whether a key or string at any depth of JSON details has a character `storable` escapes. */
function hasUnstorable(value: unknown): boolean {
  if (typeof value === "string") return unstorableIn(value);
  if (Array.isArray(value)) return value.some(hasUnstorable);
  if (value !== null && typeof value === "object") {
    for (const key in value) {
      if (Object.hasOwn(value, key) && (unstorableIn(key) || hasUnstorable((value as Record<string, unknown>)[key]))) return true;
    }
  }
  return false;
}

/**
 * The same for JSON details: keys and string values at every depth. Details with nothing to escape
 * (nearly all) are returned as they are, without a copy: every event of every call comes through here.
 */
function storableJson(value: unknown): unknown {
  return hasUnstorable(value) ? storableCopy(value) : value;
}

function storableCopy(value: unknown): unknown {
  if (typeof value === "string") return storable(value);
  if (Array.isArray(value)) return value.map(storableCopy);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[storable(k)] = storableCopy(v);
    return out;
  }
  return value;
}

/**
 * Agent-controlled text made storable; anything else (absent, a number) as it is. Printable ASCII (nearly
 * all event text) is storable as it is, and that one test is cheaper than looking for what is not.
 */
const text = <T>(value: T): T => (typeof value === "string" && !PLAIN_ASCII.test(value) ? (storable(value) as T) : value);

/**
 * The row to insert for an event, stamped now, with its identity: text made storable, then the content
 * hash computed from exactly the values written. keyward_audit_append gives it its id and chain hashes
 * (migration 0008). Built field by field (every event of every call comes through here): one object of
 * one shape, no spreads. With it, the row as JSON (what the spool holds and the database is sent),
 * written from the text its hash is computed over, which holds every field but the two in front: an
 * event is serialised once.
 */
export function serialisedAuditRow(event: AuditInput, eventId: string): { row: AuditRow; json: string } {
  const details = withNames(event.details, event.names);
  const row: AuditRow = {
    kind: event.kind,
    actor: text(event.actor),
    requestId: text(event.requestId),
    agentId: text(event.agentId),
    jti: text(event.jti),
    grantId: text(event.grantId),
    upstream: text(event.upstream),
    environment: text(event.environment),
    method: text(event.method),
    path: text(event.path),
    decision: event.decision,
    reason: text(event.reason),
    status: event.status,
    latencyMs: event.latencyMs,
    details: details === undefined ? undefined : (storableJson(details) as Prisma.InputJsonValue),
    eventId,
    at: new Date(),
    contentHash: "",
  };
  const content = contentJson(row);
  row.contentHash = contentHashOf(content);
  return { row, json: `{"eventId":${JSON.stringify(eventId)},"contentHash":"${row.contentHash}",${content.slice(1)}` };
}

/** An event as stored: what was recorded (names folded into details), its identity, when, and its content hash. */
export type AuditRow = Omit<AuditInput, "names"> & { eventId: string; at: Date; contentHash: string };

/** The names known, beside the details an event already has (an object, or none). */
function withNames(details: Prisma.InputJsonValue | undefined, names: EventNames | undefined): Prisma.InputJsonValue | undefined {
  if (names === undefined || (names.agent === undefined && names.grant === undefined)) return details;
  const known: EventNames = {};
  if (names.agent !== undefined) known.agent = names.agent;
  if (names.grant !== undefined) known.grant = names.grant;
  // Most events (a proxied call's) have no details of their own: no copy to make.
  return details === undefined ? { names: known } : { ...(details as Prisma.InputJsonObject), names: known };
}

/**
 * Appends one event, inside the caller's transaction when given one. Callers await it before answering,
 * so a failed write fails the request. (The proxy and token issuance append through the group commit of
 * src/audit/log.ts instead.)
 */
export async function appendAudit(db: AuditWriter, event: AuditInput): Promise<void> {
  await db.$executeRawUnsafe(APPEND_ONE, batchJsonOf([serialisedAuditRow(event, randomUUID()).json]));
}

/**
 * Rows as keyward_audit_append takes them, from their JSON as serialisedAuditRow wrote it: a JSON array,
 * each row with its place in the order as `seq`, none serialised again.
 */
export const batchJsonOf = (rowsJson: readonly string[]) => `[${rowsJson.map((json, seq) => `{"seq":${seq},${json.slice(1)}`).join(",")}]`;

/** jsonb's binary wire format (PostgreSQL's jsonb_recv): this version byte, then the JSON text. */
const JSONB_BINARY_VERSION = 1;

/**
 * The same rows as `batchJsonOf`, as a jsonb parameter in binary wire format, for the audit pipeline's
 * statements (src/audit/log.ts): bytes, never one string. A statement's batch is up to hundreds of KB, and
 * V8 puts a string that size straight into its old generation, as it does the flat copy the driver makes
 * of it to encode it (a sampling heap profile of what survives scavenges: 44% was the driver's copy). A
 * Buffer's bytes live outside V8's heap: 40% fewer bytes survive scavenges, and full collections start at
 * a smaller heap.
 */
export function batchJsonb(rowsJson: readonly string[]): Buffer {
  const prefixes = rowsJson.map((_, seq) => `${seq === 0 ? "" : ","}{"seq":${seq},`);
  let size = 1 + 2; // the version byte, "[" and "]"
  for (let i = 0; i < rowsJson.length; i++) size += prefixes[i]!.length + Buffer.byteLength(rowsJson[i]!) - 1;
  const bytes = Buffer.allocUnsafe(size);
  bytes[0] = JSONB_BINARY_VERSION;
  bytes[1] = 0x5b; // [
  let offset = 2;
  for (let i = 0; i < rowsJson.length; i++) {
    offset += bytes.write(prefixes[i]!, offset, "latin1");
    // every row is a JSON object: its "{" is the prefix's
    offset += bytes.write(rowsJson[i]!.slice(1), offset, "utf8");
  }
  bytes[offset] = 0x5d; // ]
  return bytes;
}

/** One event, appended (and linked into the chain) inside the caller's statement or transaction. */
export const APPEND_ONE = `SELECT keyward_audit_append($1::jsonb)`;

export type AuditFilters = {
  agentId?: string;
  grantId?: string;
  /** The name an event recorded for its agent (details.names): finds a deleted agent's events by name. */
  agentName?: string;
  /** The same for its grant, under the name it had then. */
  grantName?: string;
  jti?: string;
  upstream?: string;
  environment?: string;
  decision?: "allow" | "deny";
  method?: string;
  /** Matches the recorded (normalised) path literally: `_` and `%` are not wildcards. */
  pathPrefix?: string;
  kind?: string;
  /** A refused call's code (src/sdk/codes.ts), or an allowed call's rule: matched exactly. */
  reason?: string;
  since?: Date;
  until?: Date;
};

/** Prisma hands startsWith to LIKE as is: escape its wildcards (backslash is PostgreSQL's LIKE escape). */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function whereOf(f: AuditFilters): Prisma.AuditEventWhereInput {
  return {
    agentId: f.agentId,
    grantId: f.grantId,
    jti: f.jti,
    upstream: f.upstream,
    environment: f.environment,
    decision: f.decision,
    method: f.method,
    kind: f.kind,
    reason: f.reason,
    ...(f.pathPrefix !== undefined && { path: { startsWith: likeLiteral(f.pathPrefix) } }),
    at: { gte: f.since, lte: f.until },
    AND: [
      ...(f.agentName === undefined ? [] : [{ details: { path: ["names", "agent"], equals: f.agentName } }]),
      ...(f.grantName === undefined ? [] : [{ details: { path: ["names", "grant"], equals: f.grantName } }]),
    ],
  };
}

export type AuditEventRow = Prisma.AuditEventGetPayload<object>;
export type AuditEventView = Omit<AuditEventRow, "id"> & { id: string };

/** How events leave the broker (API, export, webhook): the id as a string, since JSON has no 64-bit integers. */
export const auditEventView = (row: AuditEventRow): AuditEventView => ({ ...row, id: row.id.toString() });

export async function queryAudit(
  prisma: PrismaClient,
  q: AuditFilters & {
    limit: number;
    /** The id of the last event of the previous page; pages go from newest to oldest. */
    cursor?: bigint;
  },
): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
  const rows = await prisma.auditEvent.findMany({
    where: { ...whereOf(q), ...(q.cursor !== undefined && { id: { lt: q.cursor } }) },
    orderBy: { id: "desc" },
    take: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  return {
    events: page.map(auditEventView),
    nextCursor: rows.length > q.limit ? page[page.length - 1]!.id.toString() : null,
  };
}

const EXPORT_BATCH = 1000;

/**
 * Every matching event after `afterId`, oldest first (the chain's order, and what a SIEM resuming from
 * the last id it has wants), read in batches so memory stays flat whatever the size of the log.
 */
export async function* exportAudit(prisma: PrismaClient, q: AuditFilters & { afterId?: bigint }): AsyncGenerator<AuditEventView> {
  let after = q.afterId ?? -1n;
  for (;;) {
    const rows = await prisma.auditEvent.findMany({
      where: { ...whereOf(q), id: { gt: after } },
      orderBy: { id: "asc" },
      take: EXPORT_BATCH,
    });
    for (const row of rows) yield auditEventView(row);
    if (rows.length < EXPORT_BATCH) return;
    after = rows[rows.length - 1]!.id;
  }
}
