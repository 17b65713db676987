import { pipeline, Readable, type Transform } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { badGateway, gatewayTimeout, KeywardError } from "../http/errors.js";
import { DetectorStream, type DetectorName } from "./detectors.js";
import { graphqlFieldValues } from "./graphql-fields.js";
import { selectNodes } from "./json-path.js";
import { leavesOf, parseJsonTree, replaceLeaves, type JsonNode } from "./json-tree.js";
import { matchedRanges, REDACTED, redactHeaders, replaceRanges, type Redaction, type ResponseHeaders } from "./redaction.js";
import type { ResponsePlan } from "./rules.js";
import { RedactingStream } from "./stream.js";

/**
 * How a response ended, for its audit event: how many secrets were replaced (in all, and by each grant or
 * preset rule that replaced some), whether the body got through whole, and the preset redactions the
 * grant's opt-out let through.
 */
export type ResponseOutcome = { redactions: number; complete: boolean; byRule?: Record<string, number>; optedOut?: readonly string[] };

/**
 * The largest body read whole to redact JSON values or GraphQL fields from it (docs/redaction.md). A larger
 * one is refused (502 response_too_large_to_redact), never passed on unredacted.
 */
export const MAX_REDACTED_BODY_BYTES = 8 * 1024 * 1024;

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  "x-gzip": createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * The codings of IANA's HTTP Content Coding and Transfer Coding registries: the ones a refusal names. Any
 * other is the upstream's free text (and the header is not searched for secrets before it is decoded by):
 * repeated in the refusal, the audit log and the log, it could carry the very secret redaction withholds.
 */
const REGISTERED_CODINGS = new Set(["aes128gcm", "br", "chunked", "compress", "dcb", "dcz", "deflate", "exi", "gzip", "pack200-gzip", "trailers", "x-compress", "x-gzip", "zstd"]);

/** 502 for a body Keyward cannot read to redact: passing it through could hand over a secret. */
export const unreadableEncoding = (header: "content-encoding" | "transfer-encoding", encoding: string) =>
  new KeywardError(502, "upstream_encoding_unsupported", "the upstream answered in an encoding Keyward cannot redact", {
    reason: `${header} ${REGISTERED_CODINGS.has(encoding) ? encoding : "(an unregistered coding)"}`,
  });

/** The codings a header lists, in the order they were applied, `identity` left out. */
const codingsOf = (value: string | string[] | undefined) =>
  (Array.isArray(value) ? value.join(",") : value ?? "")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");

/**
 * The decoders for an answer's Content-Encoding and Transfer-Encoding, in the order to apply them (the
 * last coding applied comes off first). The proxy asks for `identity`; an upstream that compresses anyway
 * is decoded, and one using a coding Keyward cannot decode is refused. The HTTP client takes off only
 * `chunked`: any other transfer coding (`Transfer-Encoding: gzip, chunked`) is still on the body, applied
 * after the content codings, and the agent, sent the body without the header, could decode it itself.
 */
export function decodersFor(contentEncoding: string | string[] | undefined, transferEncoding?: string | string[]): (() => Transform)[] {
  const applied = [
    ...codingsOf(contentEncoding).map((coding) => ({ header: "content-encoding" as const, coding })),
    ...codingsOf(transferEncoding)
      .filter((coding) => coding !== "chunked")
      .map((coding) => ({ header: "transfer-encoding" as const, coding })),
  ];
  return applied.reverse().map(({ header, coding }) => {
    const decoder = DECODERS[coding];
    if (!decoder) throw unreadableEncoding(header, coding);
    return decoder;
  });
}

/**
 * The response as the agent may see it: headers and body with every form of the upstream's secrets
 * replaced. The body streams through a RedactingStream (decoded first when compressed), so its length
 * may change: Content-Length and Content-Encoding go. `record` is called exactly once: awaited before
 * the body's last bytes are released when it got through whole (a failure then cuts the response short),
 * or as soon as the body is abandoned (the agent left, the upstream failed mid-body).
 */
export function redactResponse(
  redaction: Redaction,
  response: { headers: ResponseHeaders; body: Readable; transferEncoding?: string | string[]; bodiless?: boolean },
  record: (outcome: ResponseOutcome) => Promise<void>,
  rules: { detectors?: ResponsePlan["detectors"]; decode?: boolean } = {},
): { headers: ResponseHeaders; body: Readable } {
  const detectors = rules.detectors ?? [];
  const active = redaction.patterns.length > 0 || detectors.length > 0 || rules.decode === true;
  // A HEAD, 1xx, 204 or 304 says how its resource is encoded but has no body to decode: a decoder given
  // nothing fails (Z_BUF_ERROR), and would refuse every HEAD of a resource stored compressed (as S3 keeps one).
  const decoders = active && !response.bodiless ? decodersFor(response.headers["content-encoding"], response.transferEncoding) : [];
  const shown = active ? redactHeaders(redaction, response.headers) : { headers: response.headers, count: 0 };
  const headers = { ...shown.headers };
  if (active) {
    delete headers["content-length"];
    delete headers["content-encoding"];
  }
  let recorded = false;
  const recordOnce = (outcome: ResponseOutcome) => {
    recorded = true;
    return record(outcome);
  };
  // The detectors' stream, when there is one, comes last: it is the one that records before releasing its tail.
  const detecting = detectors.length > 0 ? new DetectorStream([...new Set(detectors.map((d) => d.detector))], () => recordOnce(outcome(true))) : null;
  const redactor = new RedactingStream(redaction, async () => {
    if (!detecting) await recordOnce(outcome(true));
  });
  const outcome = (complete: boolean): ResponseOutcome => {
    const byRule = detecting ? ruleCounts(detectors, detecting.counts) : {};
    const ruled = Object.values(byRule).reduce((a, b) => a + b, 0);
    return { redactions: shown.count + redactor.count + ruled, complete, ...(ruled > 0 && { byRule }) };
  };
  const last = detecting ?? redactor;
  pipeline([response.body, ...decoders.map((make) => make()), redactor, ...(detecting ? [detecting] : [])], (err) => {
    if (err && !recorded) recordOnce(outcome(false)).catch(() => {});
  });
  return { headers, body: last };
}

/** Detector counts under the label of the rule that asked for each detector (its first, if several did). */
function ruleCounts(detectors: ResponsePlan["detectors"], counts: ReadonlyMap<DetectorName, number>): Record<string, number> {
  const byRule: Record<string, number> = {};
  for (const [detector, count] of counts) {
    const label = detectors.find((d) => d.detector === detector)!.label;
    byRule[label] = (byRule[label] ?? 0) + count;
  }
  return byRule;
}

const tooLargeToRedact = () =>
  new KeywardError(502, "response_too_large_to_redact", "the upstream's answer is larger than Keyward reads whole to redact it", {
    reason: `response body exceeds ${MAX_REDACTED_BODY_BYTES} bytes`,
  });
const unredactable = (reason: string) =>
  new KeywardError(502, "response_unredactable", "the upstream's answer could not be read to redact what the grant's rules select", { reason });

/**
 * The largest answer read whole and redacted in one piece (when its length is declared and it is not
 * encoded): most API answers. It then goes out with its exact Content-Length in one write, without a
 * stream per call; a larger one, or one of unknown length, streams.
 */
export const WHOLE_BODY_BYTES = 64 * 1024;

/**
 * An upstream answer as redaction takes it: the call's method and the status tell whether it has a body.
 * `headers` are those the agent may see; `transferEncoding` is the upstream's own (hop-by-hop, not passed on).
 */
export type UpstreamAnswer = { method: string; status: number; headers: ResponseHeaders; body: Readable; transferEncoding?: string | string[] };

/** An answer that has no body, whatever its headers say: to a HEAD, or a 1xx, 204 or 304 (RFC 9110 §6.4.1). */
const isBodiless = (answer: UpstreamAnswer) => answer.method === "HEAD" || answer.status < 200 || answer.status === 204 || answer.status === 304;

/** Whether the answer has a body of declared length up to WHOLE_BODY_BYTES, not encoded: read whole. */
function readsWhole(answer: UpstreamAnswer): boolean {
  if (isBodiless(answer)) return false;
  if (answer.transferEncoding !== undefined) return false;
  const encoding = answer.headers["content-encoding"];
  if (encoding !== undefined && String(encoding).trim().toLowerCase() !== "identity") return false;
  const length = answer.headers["content-length"];
  if (typeof length !== "string" || !/^\d{1,7}$/.test(length)) return false;
  const bytes = Number(length);
  return bytes > 0 && bytes <= WHOLE_BODY_BYTES;
}

/**
 * The response with the plan's rules applied besides the credential's secrets. Detectors stream; JSON
 * values and GraphQL fields need the whole body, read within MAX_REDACTED_BODY_BYTES: a larger body, or
 * one that is not the JSON the rules select from, is refused with 502 rather than passed on. A body read
 * whole goes out with its exact Content-Length, after `record` has been awaited.
 */
export async function redactResponseWithRules(
  redaction: Redaction,
  plan: ResponsePlan,
  answer: UpstreamAnswer,
  record: (outcome: ResponseOutcome) => Promise<void>,
): Promise<{ headers: ResponseHeaders; body: Readable | Buffer }> {
  const withOptOut = (outcome: ResponseOutcome): ResponseOutcome => (plan.optedOut.length > 0 ? { ...outcome, optedOut: plan.optedOut } : outcome);
  const ruled = plan.detectors.length > 0 || plan.json.length > 0 || plan.graphql.length > 0;
  if (ruled && !isBodiless(answer) && !readableByRules(answer.headers)) {
    throw unredactable("the body's charset is not one the grant's rules can read (UTF-8, or another that writes ASCII as ASCII)");
  }
  if (plan.detectors.length === 0 && readsWhole(answer)) {
    const body = await readWithin(answer.body, WHOLE_BODY_BYTES);
    return redactWhole(redaction, plan, answer.headers, body, (outcome) => record(withOptOut(outcome)));
  }
  const response = { headers: answer.headers, body: answer.body, transferEncoding: answer.transferEncoding, bodiless: isBodiless(answer) };
  if (plan.json.length === 0 && plan.graphql.length === 0) {
    return redactResponse(redaction, response, (outcome) => record(withOptOut(outcome)), { detectors: plan.detectors });
  }
  let streamed: ResponseOutcome | undefined;
  const shown = redactResponse(redaction, response, async (outcome) => void (streamed = outcome), { detectors: plan.detectors, decode: true });
  const body = await readWithin(shown.body, MAX_REDACTED_BODY_BYTES);
  const whole = await finishWhole(plan, shown.headers, body, streamed!, (outcome) => record(withOptOut(outcome)));
  return { headers: whole.headers, body: Readable.from([whole.body]) };
}

/**
 * Charsets that write ASCII text as ASCII bytes. The grant's rules read a body that way (detectors match
 * ASCII patterns; JSON and GraphQL values are read as UTF-8): in UTF-16 or UTF-32, which an agent can ask
 * an upstream for (Spring writes JSON in the charset its Accept names), what they look for is not there.
 */
const ASCII_COMPATIBLE = /^(?:utf-?8|us-ascii|ascii|iso-8859-\d{1,2}|latin-?1|windows-125\d)$/;

/** Whether the answer's declared charset, if any, is one the grant's rules can read. */
function readableByRules(headers: ResponseHeaders): boolean {
  const type = headers["content-type"];
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(Array.isArray(type) ? type.join(";") : (type ?? ""))?.[1];
  return charset === undefined || ASCII_COMPATIBLE.test(charset.toLowerCase());
}

/** A body read whole: its secrets, then the plan's JSON and GraphQL values, replaced; recorded before it goes out. */
async function redactWhole(
  redaction: Redaction,
  plan: ResponsePlan,
  upstreamHeaders: ResponseHeaders,
  body: Buffer,
  record: (outcome: ResponseOutcome) => Promise<void>,
): Promise<{ headers: ResponseHeaders; body: Buffer }> {
  const shown = redactHeaders(redaction, upstreamHeaders);
  const ranges = matchedRanges(redaction, body);
  return finishWhole(plan, shown.headers, replaceRanges(body, ranges), { redactions: shown.count + ranges.length }, record);
}

/**
 * A body held whole with its secrets replaced already (`counted`: those redactions, in headers and body,
 * and the detectors' by rule): the plan's JSON values and GraphQL fields are replaced too, and the
 * outcome recorded, before it goes out with its exact length.
 */
async function finishWhole(
  plan: ResponsePlan,
  headers: ResponseHeaders,
  body: Buffer,
  counted: Pick<ResponseOutcome, "redactions" | "byRule">,
  record: (outcome: ResponseOutcome) => Promise<void>,
): Promise<{ headers: ResponseHeaders; body: Buffer }> {
  let { redactions, byRule } = counted;
  // Without a JSON or GraphQL rule (most calls) what was counted is the outcome, taken without a copy.
  if (plan.json.length > 0 || plan.graphql.length > 0) {
    const structured = redactStructured(body, plan);
    byRule = { ...byRule };
    for (const [label, count] of Object.entries(structured.byRule)) {
      byRule[label] = (byRule[label] ?? 0) + count;
      redactions += count;
    }
    body = structured.body;
  }
  await record(byRule !== undefined && Object.keys(byRule).length > 0 ? { redactions, complete: true, byRule } : { redactions, complete: true });
  // An empty body (a 204, a HEAD) keeps no length: its headers must not claim one.
  const shown = { ...headers };
  if (body.length > 0) shown["content-length"] = String(body.length);
  return { headers: shown, body };
}

/**
 * A body read to its end within `limit` bytes. Read through its events rather than an async iterator:
 * every small answer is read whole, and the iterator's promises and listeners cost more than the read.
 */
function readWithin(body: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      body.destroy();
      if (err instanceof KeywardError) reject(err);
      // undici's body timeout: the upstream stalled mid-body.
      else if ((err as { code?: unknown } | undefined)?.code === "UND_ERR_BODY_TIMEOUT") reject(gatewayTimeout("upstream did not answer in time"));
      else reject(badGateway("the upstream broke off its answer"));
    };
    body.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) fail(tooLargeToRedact());
      else chunks.push(chunk);
    });
    body.once("end", () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    body.once("error", fail);
    // Destroyed without an error (the agent left and the call was aborted): it did not end.
    body.once("close", () => fail(undefined));
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The body with the values the plan's JSON and GraphQL rules select replaced, and how many each replaced. */
export function redactStructured(body: Buffer, plan: ResponsePlan): { body: Buffer; byRule: Record<string, number> } {
  if (body.length === 0) return { body, byRule: {} };
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw unredactable("the body is not UTF-8 text");
  }
  const tree = parseJsonTree(text);
  if (!tree) throw unredactable("the body is not JSON");
  const selected = new Map<JsonNode, string>();
  const byRule: Record<string, number> = {};
  const take = (label: string, nodes: JsonNode[]) => {
    for (const node of nodes) for (const leaf of leavesOf(node)) if (!selected.has(leaf)) selected.set(leaf, label);
  };
  for (const rule of plan.json) take(rule.label, selectNodes(tree, rule.selector));
  for (const rule of plan.graphql) {
    const values = rule.requests ? graphqlFieldValues(rule.requests, tree, rule.fields) : null;
    if (!values) throw unredactable("the GraphQL result does not match the request's documents");
    take(rule.label, values);
  }
  for (const label of selected.values()) byRule[label] = (byRule[label] ?? 0) + 1;
  const redacted = replaceLeaves(text, selected.keys(), JSON.stringify(REDACTED));
  return { body: redacted.count > 0 ? Buffer.from(redacted.text, "utf8") : body, byRule };
}

/** What a response event records of its outcome: that, and how often, something was redacted (never what). */
export function auditedOutcome(outcome: ResponseOutcome): {
  reason?: string;
  details?: { redactions?: number; redactedBy?: Record<string, number>; redactOptOut?: string[] };
} {
  // Written field by field (every proxied call's outcome comes through here): no object spread per field.
  let details: { redactions?: number; redactedBy?: Record<string, number>; redactOptOut?: string[] } | undefined;
  if (outcome.redactions > 0) (details ??= {}).redactions = outcome.redactions;
  if (outcome.byRule) (details ??= {}).redactedBy = outcome.byRule;
  if (outcome.optedOut) (details ??= {}).redactOptOut = [...outcome.optedOut];
  const audited: { reason?: string; details?: typeof details } = {};
  if (!outcome.complete) audited.reason = "response_incomplete";
  if (details) audited.details = details;
  return audited;
}
