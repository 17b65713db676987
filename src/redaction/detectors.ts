import { Transform, type TransformCallback } from "node:stream";
import { REDACTED } from "./redaction.js";

/**
 * Named detectors for well-known secret formats, for a grant's `{ "detector": "<name>" }` rules. The
 * formats (prefixes, alphabets, lengths) are those of gitleaks' rule set (github.com/gitleaks/gitleaks,
 * config/gitleaks.toml, MIT licence), written here for a stream: every quantifier is bounded, so a match
 * is never longer than MAX_MATCH_BYTES, and no pattern crosses a JSON string's closing quote, so a
 * replacement inside a JSON body keeps it JSON. secretlint's rules were tried first and set aside: their
 * ranges are made for reporting (an AWS secret's range points before it, a connection string runs on into
 * the next JSON member, a PEM key with `\n` escapes is not found), and redaction needs exact ones.
 *
 * `connection-string` replaces the password of a URI that carries one (`postgres://user:PASSWORD@host`);
 * the others replace the whole token.
 */
const DETECTOR_PATTERNS = {
  /** PEM private keys (RSA, EC, DSA, OPENSSH, PGP "PRIVATE KEY BLOCK", encrypted), with real or JSON-escaped newlines. */
  "private-key":
    /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s:,._]|\\[rnt/]|-(?!----)){16,16384}(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)?/g,
  /** AWS access key ids: long-term (AKIA), temporary (ASIA) and the other documented prefixes. */
  "aws-access-key": /(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z2-7]{16}(?![A-Za-z0-9])/g,
  /** GitHub tokens: classic PATs (ghp_), OAuth (gho_), user-to-server and server-to-server (ghu_, ghs_), refresh (ghr_), fine-grained PATs. */
  "github-token": /(?<![A-Za-z0-9_])(?:gh[pousr]_[0-9A-Za-z]{36,255}|github_pat_[0-9A-Za-z_]{82})(?![A-Za-z0-9_])/g,
  /** GitLab personal, project and group access tokens. */
  "gitlab-token": /(?<![A-Za-z0-9_-])glpat-[0-9A-Za-z_-]{20,50}(?![A-Za-z0-9_-])/g,
  /** Slack bot, user, app-level and legacy tokens, and incoming-webhook URLs. */
  "slack-token":
    /(?<![A-Za-z0-9-])(?:xox[abposre]-[0-9A-Za-z-]{10,250}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,100}|https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9+/]{20,100})/g,
  /** Stripe secret and restricted keys (test and live). */
  "stripe-key": /(?<![A-Za-z0-9_])(?:sk|rk)_(?:test|live|prod)_[0-9A-Za-z]{10,250}(?![A-Za-z0-9_])/g,
  /** Google API keys. */
  "google-api-key": /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g,
  /** npm access tokens. */
  "npm-token": /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])/g,
  /** OpenAI API keys (project, service-account, admin and legacy), which carry the `T3BlbkFJ` marker. */
  "openai-key": /(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200}(?![A-Za-z0-9_-])/g,
  /** Anthropic API and admin keys. */
  "anthropic-key": /(?<![A-Za-z0-9_-])sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,120}(?![A-Za-z0-9_-])/g,
  /** JSON Web Tokens (header and payload are base64url JSON objects, hence `eyJ`). */
  jwt: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,4096}\.eyJ[A-Za-z0-9_-]{10,8192}\.[A-Za-z0-9_-]{0,1024}/g,
  /** The password of a database, cache or broker URI; group 1 is what is replaced. */
  "connection-string":
    /\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|cockroachdb|clickhouse|nats|kafka|ldaps?|ftps?|sftp|smtps?):\/\/[^\s"'\\/:@]{0,256}:([^\s"'\\/@]{1,256})@/g,
} as const;

export type DetectorName = keyof typeof DETECTOR_PATTERNS;
export const DETECTOR_NAMES = Object.keys(DETECTOR_PATTERNS) as [DetectorName, ...DetectorName[]];

/**
 * The longest text any pattern can match, in characters of the latin1 view (one per byte): bounded by
 * the largest quantifiers above (the private key's body), with room for its markers.
 */
export const MAX_MATCH_BYTES = 16 * 1024 + 512;

/** A half-open range [start, end) of the scanned text to replace, and the detector that found it first. */
type Range = { start: number; end: number; detector: DetectorName };

/** Where the detectors match in a text (latin1: one character per byte, so positions are byte offsets). */
export function detectorMatches(detectors: readonly DetectorName[], text: string): Range[] {
  const found: Range[] = [];
  for (const name of detectors) {
    // A fresh RegExp per scan: the shared one's lastIndex must not carry over between streams.
    const pattern = new RegExp(DETECTOR_PATTERNS[name]);
    for (const m of text.matchAll(pattern)) {
      const start = m[1] === undefined ? m.index : m.index + m[0].length - 1 - m[1].length;
      found.push({ start, end: start + (m[1] ?? m[0]).length, detector: name });
    }
  }
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Range[] = [];
  for (const range of found) {
    const last = merged.at(-1);
    if (last && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}

/**
 * Replaces detected secrets in a byte stream as it passes. A window of MAX_MATCH_BYTES is held back
 * between chunks: every match that starts before the cut lies wholly inside the data seen, so it is
 * final; matches starting after it are found again with the next chunk. The body is never held whole.
 */
export class DetectorStream extends Transform {
  #held = "";
  /** Secrets replaced so far, by the detector that found them. */
  readonly counts = new Map<DetectorName, number>();

  /** `beforeEnd` runs once the whole body has been searched, before its held-back tail is released (see RedactingStream). */
  constructor(
    private readonly detectors: readonly DetectorName[],
    private readonly beforeEnd: () => Promise<void>,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#held += chunk.toString("latin1");
    if (this.#held.length <= 2 * MAX_MATCH_BYTES) return done();
    done(null, this.#release(this.#held.length - MAX_MATCH_BYTES));
  }

  override _flush(done: TransformCallback): void {
    const out = this.#release(this.#held.length);
    this.beforeEnd().then(
      () => done(null, out),
      (err: Error) => done(err),
    );
  }

  /** Emits the held text up to `cut` (or to the end of a match that starts before it), redacted. */
  #release(cut: number): Buffer {
    const text = this.#held;
    const ranges = detectorMatches(this.detectors, text).filter((r) => r.start < cut);
    const emit = Math.max(cut, ranges.at(-1)?.end ?? 0);
    const parts: string[] = [];
    let from = 0;
    for (const { start, end } of ranges) {
      parts.push(text.slice(from, start), REDACTED);
      from = end;
    }
    parts.push(text.slice(from, emit));
    for (const { detector } of ranges) this.counts.set(detector, (this.counts.get(detector) ?? 0) + 1);
    this.#held = text.slice(emit);
    return Buffer.from(parts.join(""), "latin1");
  }
}
