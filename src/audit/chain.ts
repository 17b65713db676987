import { createHash, createHmac, hash, hkdfSync, timingSafeEqual } from "node:crypto";

/**
 * The audit log's hash chain, as pure functions shared by the writer (src/audit/audit.ts), the database's
 * link trigger (migration 0002, which computes `linkHash` in SQL) and the verifier (src/audit/verify.ts).
 *
 *   contentHash = sha256(canonicalJson(content))       content: every column but id and the hashes
 *   hash        = sha256(prevHash + "|" + id + "|" + contentHash)
 *
 * The first event's prevHash is GENESIS_HASH, or, after pruning, the last pruned event's hash as recorded
 * in the newest checkpoint.
 */

export const GENESIS_HASH = "0".repeat(64);

/** The hashed columns of an audit event, in the shape both the writer and a row read back have. */
export const CONTENT_FIELDS = [
  "at",
  "requestId",
  "actor",
  "kind",
  "agentId",
  "jti",
  "grantId",
  "upstream",
  "environment",
  "method",
  "path",
  "decision",
  "reason",
  "status",
  "latencyMs",
  "details",
] as const;

export type AuditContent = { at: Date } & Partial<Record<(typeof CONTENT_FIELDS)[number], unknown>>;

// One-shot: every audit event is hashed, and a Hash object per event cost more than the digest.
const sha256 = (text: string) => hash("sha256", text, "hex");

/**
 * JSON with object keys sorted (by UTF-16 code units, as JavaScript sorts) at every depth and no
 * whitespace. Values are taken as JSON.stringify takes them (toJSON first, so a Date becomes its ISO
 * string; undefined, functions and symbols dropped from objects and null in arrays; non-finite numbers
 * null), exactly as they are on their way into a JSONB column. Written in one pass: every audit event is
 * hashed, and a JSON round trip per event was most of its cost.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? "null";
}

/** Printable ASCII but `"` and `\`: what JSON writes as it is (and what needs nothing made storable, src/audit/audit.ts). */
export const PLAIN_ASCII = /^[ !#-[\]-~]*$/;

/** A string as JSON.stringify writes it (most event text needs no escape: written without calling it). */
const quoted = (text: string) => (PLAIN_ASCII.test(text) ? `"${text}"` : JSON.stringify(text));

/** The canonical text of a value, or undefined where JSON.stringify leaves the value out. */
function canonical(value: unknown): string | undefined {
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  switch (typeof value) {
    case "string":
      return quoted(value);
    case "number":
    case "boolean":
    case "bigint": // JSON.stringify throws for it, as it should here
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map((item) => canonical(item) ?? "null").join(",")}]`;
      const record = value as Record<string, unknown>;
      let text = "";
      for (const key of sortedKeys(record)) {
        const item = canonical(record[key]);
        if (item !== undefined) text += `${text === "" ? "" : ","}${quoted(key)}:${item}`;
      }
      return `{${text}}`;
    }
    default:
      return undefined;
  }
}

/**
 * An object's keys in the order canonicalJson writes them. Nearly every object in an event has them in
 * that order already (names: agent, grant), and sorting, even two keys, allocated more than the rest.
 */
function sortedKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record);
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return keys.sort();
  return keys;
}

/** A content field's canonical text; missing and null are the same thing in a row, so both are null. */
const field = (value: unknown): string => (value === undefined || value === null ? "null" : typeof value === "string" ? quoted(value) : canonicalJson(value));

/**
 * The canonical JSON of every content field, as hashed: canonicalJson of an object holding each of
 * CONTENT_FIELDS (`at` as its ISO text), in the order it sorts them. Written out field by field, each
 * read by name: a loop reading them by a key that changes made every read a generic lookup, and this is
 * done for every event of every call.
 */
export function contentJson(e: AuditContent): string {
  return (
    `{"actor":${field(e.actor)},"agentId":${field(e.agentId)},"at":"${e.at.toISOString()}","decision":${field(e.decision)},` +
    `"details":${field(e.details)},"environment":${field(e.environment)},"grantId":${field(e.grantId)},"jti":${field(e.jti)},` +
    `"kind":${field(e.kind)},"latencyMs":${field(e.latencyMs)},"method":${field(e.method)},"path":${field(e.path)},` +
    `"reason":${field(e.reason)},"requestId":${field(e.requestId)},"status":${field(e.status)},"upstream":${field(e.upstream)}}`
  );
}

/** The content hash of a contentJson already written. */
export const contentHashOf = (json: string): string => sha256(json);

/** sha256 of contentJson. */
export const contentHash = (event: AuditContent): string => contentHashOf(contentJson(event));

export const linkHash = (prevHash: string, id: bigint, contentHashHex: string) =>
  sha256(`${prevHash}|${id.toString()}|${contentHashHex}`);

/** What a pruning checkpoint commits to; its hash is signed, so it cannot be forged without the master key. */
export type CheckpointContent = {
  at: Date;
  actor: string;
  throughId: bigint;
  throughHash: string;
  prunedEvents: number;
  keyId: string;
  prevHash: string;
};

export const checkpointHash = (c: CheckpointContent) =>
  sha256(
    canonicalJson({
      at: c.at.toISOString(),
      actor: c.actor,
      throughId: c.throughId.toString(),
      throughHash: c.throughHash,
      prunedEvents: c.prunedEvents,
      keyId: c.keyId,
      prevHash: c.prevHash,
    }),
  );

/** The HMAC key for checkpoint signatures, derived from the master key so no new secret is needed. */
export type CheckpointKey = { keyId: string; key: Buffer };

/** The current master key's checkpoint key first (it signs), then the previous one's during a rotation. */
export type CheckpointKeys = readonly [CheckpointKey, ...CheckpointKey[]];

export function deriveCheckpointKey(masterKey: Buffer): CheckpointKey {
  const key = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), "keyward audit checkpoint v1", 32));
  return { keyId: createHash("sha256").update(key).digest("hex").slice(0, 16), key };
}

export const signCheckpoint = (key: CheckpointKey, hash: string) =>
  createHmac("sha256", key.key).update(hash, "utf8").digest("hex");

export function checkpointSignatureValid(key: CheckpointKey, hash: string, signature: string): boolean {
  const expected = Buffer.from(signCheckpoint(key, hash), "hex");
  const given = Buffer.from(signature, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
