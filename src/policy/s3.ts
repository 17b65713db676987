import { isIP } from "node:net";
import { S3_OPERATIONS } from "./presets/aws-s3-operations.js";
import type { Headers } from "./content.js";
import { parseQuery, type QueryParams } from "./query.js";

/** One S3 REST operation as AWS's service model defines it (table: src/policy/presets/aws-s3-operations.ts). */
export type S3Operation = {
  name: string;
  method: string;
  /** What the path addresses: the service (no bucket), a bucket, or an object in it. */
  resource: "service" | "bucket" | "object";
  /** Query parameters that make the call this operation (value null: present with any value). */
  query: Readonly<Record<string, string | null>>;
  /** Request headers (lower-case) that make the call this operation (CopyObject's x-amz-copy-source). */
  headers: readonly string[];
};

type Resource = S3Operation["resource"];

/**
 * How the upstream's host addresses buckets. AWS endpoints say it in the host: a label before the
 * `s3`/`s3-<region>` label is the bucket (virtual-hosted style); an IP address or localhost can only be
 * path-style. Any other host (an S3-compatible endpoint) could be either: both readings are taken.
 */
export function s3AddressingOf(host: string | undefined): "virtual-hosted" | "path" | "unknown" {
  const name = (host ?? "").toLowerCase();
  // No bucket can be a subdomain of an IP address or of localhost: those are path-style.
  if (isIP(name.replace(/^\[|\]$/g, "")) !== 0 || name === "localhost") return "path";
  const labels = name.split(".");
  if (labels.slice(-2).join(".") !== "amazonaws.com") return "unknown";
  // The rightmost such label: a bucket may itself be called `s3-backups`.
  let s3Label = -1;
  for (let i = labels.length - 3; i >= 0 && s3Label === -1; i--) {
    if (labels[i] === "s3" || labels[i]!.startsWith("s3-")) s3Label = i;
  }
  if (s3Label === -1) return "unknown";
  return s3Label > 0 ? "virtual-hosted" : "path";
}

/** The resource a full path (base path included) addresses, in one addressing style. */
function resourceOf(style: "virtual-hosted" | "path", segments: readonly string[]): Resource {
  if (style === "virtual-hosted") return segments.length === 0 || segments.join("/") === "" ? "bucket" : "object";
  if (segments.length === 0 || segments.join("/") === "") return "service";
  return segments.slice(1).join("/") === "" ? "bucket" : "object";
}

/** The operation of one method, resource and query: the one whose required parameters are all there, the most specific. */
function resolve(method: string, resource: Resource, query: QueryParams, headers: Headers): S3Operation[] {
  let best: S3Operation[] = [];
  let bestSize = -1;
  for (const op of S3_OPERATIONS) {
    if (op.method !== method || op.resource !== resource) continue;
    const required = Object.entries(op.query);
    const present = required.every(([name, value]) => {
      const values = query.get(name.toLowerCase());
      return values !== undefined && (value === null || values.includes(value));
    });
    if (!present || !op.headers.every((name) => headers[name] !== undefined)) continue;
    const size = required.length + op.headers.length;
    if (size > bestSize) [best, bestSize] = [[op], size];
    else if (size === bestSize) best.push(op);
  }
  return best;
}

/**
 * The S3 operations a call can be, by AWS's names: usually one; several when the addressing style is
 * not known from the host (each reading counts, so protection holds under either) or the query names
 * more than one operation's parameters.
 */
export function s3OperationsOf(
  call: { method: string; host: string | undefined; fullPath: readonly string[]; query: QueryParams; headers: Headers },
): string[] {
  const style = s3AddressingOf(call.host);
  const styles = style === "unknown" ? (["path", "virtual-hosted"] as const) : [style];
  const names = styles.flatMap((s) => resolve(call.method, resourceOf(s, call.fullPath), call.query, call.headers).map((op) => op.name));
  return [...new Set(names)];
}

/**
 * Whether a call may be S3's bulk delete (`POST /{bucket}?delete`, DeleteObjects): its body names up to
 * 1,000 objects, read to count them (src/policy/decide.ts).
 */
export const mayBeS3BulkDelete = (method: string, rawQuery: string): boolean => method === "POST" && parseQuery(rawQuery).has("delete");

/** An `Object` element's start, with any namespace prefix: servers that read XML by local name (Go's encoding/xml, MinIO) take `<s3:Object>` as one. */
const OBJECT_ELEMENT = /<(?:[^\s<>/:!?]+:)?Object[\s/>]/g;

/** A declared encoding whose bytes read as UTF-8 read the same for markup (ASCII), or none declared. */
const ASCII_MARKUP = /^\s*<\?xml[^>]*?encoding\s*=\s*["'](?!(?:utf-8|us-ascii|iso-8859-1)["'])/i;

/**
 * How many objects a DeleteObjects body names: its `Object` elements. Counted in the bytes as sent, so
 * a count is never below what S3 deletes (an element in a comment or CDATA counts too). null when the
 * bytes do not show them: a DTD (its entities can expand to more elements), a body S3 decodes first (a
 * Content-Encoding; aws-chunked framing can split an element between chunks), or one not in an
 * ASCII-compatible encoding (UTF-16: NUL bytes, or another declared encoding).
 */
export function s3DeletedObjectCount(body: Uint8Array, headers: Headers): number | null {
  const encoding = headers["content-encoding"];
  const payloadHash = headers["x-amz-content-sha256"];
  if ((encoding !== undefined && String(encoding).trim().toLowerCase() !== "identity") || String(payloadHash ?? "").toUpperCase().startsWith("STREAMING-")) {
    return null;
  }
  if (body.includes(0)) return null;
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
  if (/<!DOCTYPE/i.test(text) || ASCII_MARKUP.test(text)) return null;
  return text.match(OBJECT_ELEMENT)?.length ?? 0;
}
