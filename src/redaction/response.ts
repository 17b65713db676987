import { pipeline, type Readable, type Transform } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { KeywardError } from "../http/errors.js";
import { redactHeaders, type Redaction, type ResponseHeaders } from "./redaction.js";
import { RedactingStream } from "./stream.js";

/** How a response ended, for its audit event: how many secrets were replaced, and whether the body got through whole. */
export type ResponseOutcome = { redactions: number; complete: boolean };

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  "x-gzip": createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** 502 for a body Keyward cannot read to redact: passing it through could hand over a secret. */
export const unreadableEncoding = (encoding: string) =>
  new KeywardError(502, "upstream_encoding_unsupported", "the upstream answered in an encoding Keyward cannot redact", {
    reason: `content-encoding ${encoding.slice(0, 100)}`,
  });

/**
 * The decoders for a Content-Encoding, in the order to apply them (the last coding applied comes off
 * first). The proxy asks for `identity`; an upstream that compresses anyway is decoded, and one using a
 * coding Keyward cannot decode is refused.
 */
export function decodersFor(contentEncoding: string | string[] | undefined): (() => Transform)[] {
  const codings = (Array.isArray(contentEncoding) ? contentEncoding.join(",") : contentEncoding ?? "")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  return codings.reverse().map((coding) => {
    const decoder = DECODERS[coding];
    if (!decoder) throw unreadableEncoding(coding);
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
  response: { headers: ResponseHeaders; body: Readable },
  record: (outcome: ResponseOutcome) => Promise<void>,
): { headers: ResponseHeaders; body: Readable } {
  const active = redaction.patterns.length > 0;
  const decoders = active ? decodersFor(response.headers["content-encoding"]) : [];
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
  const redactor = new RedactingStream(redaction, (count) => recordOnce({ redactions: shown.count + count, complete: true }));
  pipeline([response.body, ...decoders.map((make) => make()), redactor], (err) => {
    if (err && !recorded) recordOnce({ redactions: shown.count + redactor.count, complete: false }).catch(() => {});
  });
  return { headers, body: redactor };
}

/** What a response event records of its outcome: that, and how often, something was redacted (never what). */
export function auditedOutcome(outcome: ResponseOutcome): { reason?: string; details?: { redactions: number } } {
  return {
    ...(!outcome.complete && { reason: "response_incomplete" }),
    ...(outcome.redactions > 0 && { details: { redactions: outcome.redactions } }),
  };
}
