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

/** How many objects a DeleteObjects body names: its `<Object>` elements. */
export function s3DeletedObjectCount(body: Uint8Array): number {
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8").match(/<Object[\s>]/g)?.length ?? 0;
}
