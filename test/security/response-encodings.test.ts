import net from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";
import { statusOf, title } from "./cases.js";

/**
 * Redaction (docs/redaction.md) reads the body as the agent will: every coding the upstream wrapped it
 * in must come off first, or the injected secret goes through inside bytes the agent decodes itself.
 * The upstream is a raw TCP server: Node's HTTP server would not send these framings.
 */
describe("upstream answers in codings and spellings redaction must see through", () => {
  const secret = "sk-live-coding-0123456789abcdefXYZ";
  const REDACTED = "[redacted-by-keyward]";
  const echo = `{"echo":"${secret}"}`;
  let store: Store;
  let broker: TestBroker;
  let server: net.Server;
  let token: string;

  /** Raw answers by path: the bytes after the status line. */
  const answers: Record<string, () => Buffer> = {
    // RFC 9112 §6.1: a transfer coding besides chunked, applied after it on the way out, off first on the way in.
    "/te-gzip-chunked": () => {
      const body = gzipSync(echo);
      return Buffer.concat([Buffer.from(`Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n0\r\n\r\n")]);
    },
    // Without chunked, the body runs to the end of the connection.
    "/te-gzip-close": () => Buffer.concat([Buffer.from("Content-Type: application/json\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n"), gzipSync(echo)]),
    // The secret as a header's name (HTTP names are tokens: letters, digits and -._~ and a few more), which
    // the agent receives lower-cased: all of a hex or lower-case key, and most of any other.
    "/header-name": () => Buffer.from(`X-Echo-${secret}: seen\r\nX-Other: kept\r\nContent-Length: 2\r\n\r\nok`),
    "/coding-name": () => Buffer.from(`Content-Encoding: x-${secret}\r\nContent-Length: 2\r\n\r\nok`),
    "/te-coding-name": () => Buffer.from(`Transfer-Encoding: ${secret}, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`),
    // A transfer coding Keyward cannot take off.
    "/te-compress": () => Buffer.from(`Transfer-Encoding: compress, chunked\r\n\r\n${echo.length.toString(16)}\r\n${echo}\r\n0\r\n\r\n`),
  };

  beforeAll(async () => {
    server = net.createServer((socket) => {
      let head = "";
      socket.on("error", () => {});
      socket.on("data", (data) => {
        head += data.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        const path = head.split(" ")[1]!.replace(/^\/base/, "");
        const answer = answers[path];
        socket.end(answer ? Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\n"), answer()]) : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    store = newStore();
    broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: "3000" });
    await createUpstream(broker, { name: "raw", baseUrl: `http://127.0.0.1:${port}/base`, environment: "staging", secret });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "raw", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    server?.close();
    await store?.drop();
  });

  /** The body exactly as sent (no client decoding), and whether the agent could gunzip it. */
  const fetchRaw = (path: string) =>
    request(broker.url)
      .get(`/proxy/raw${path}`)
      .set("authorization", `Bearer ${token}`)
      .buffer(true)
      .parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done(null, Buffer.concat(chunks)));
      });
  const decodedByAgent = (body: Buffer) => {
    try {
      return gunzipSync(body).toString("utf8");
    } catch {
      return body.toString("utf8");
    }
  };

  it.each(["/te-gzip-chunked", "/te-gzip-close"])(`${title("SEC-12")}: %s`, async (path) => {
    const res = await fetchRaw(path);
    expect(res.status).toBe(statusOf("SEC-12"));
    const body = res.body as Buffer;
    expect(decodedByAgent(body)).not.toContain(secret);
    expect(body.toString("utf8")).toBe(`{"echo":"${REDACTED}"}`);
  });

  it(title("SEC-14"), async () => {
    const res = await fetchRaw("/header-name");
    expect(res.status).toBe(statusOf("SEC-14"));
    const names = Object.keys(res.headers).join("\n");
    expect(names).not.toContain(secret.toLowerCase());
    expect(names).not.toContain("x-echo-");
    expect(res.headers["x-other"]).toBe("kept");
    expect((res.body as Buffer).toString("utf8")).toBe("ok");
  });

  it.each(["/coding-name", "/te-coding-name"])(`${title("SEC-15")}: %s`, async (path) => {
    const res = await fetchRaw(path);
    expect(res.status).toBe(statusOf("SEC-15"));
    const error = JSON.parse((res.body as Buffer).toString("utf8")).error;
    expect(error.code).toBe("upstream_encoding_unsupported");
    expect(error.reason).toMatch(/-encoding \(an unregistered coding\)$/);
    const lowered = secret.toLowerCase();
    await waitFor(async () => (await broker.keyward.db.prisma.auditEvent.count({ where: { requestId: res.headers["x-request-id"] } })) === 2, 5000, "the call's two audit events");
    const events = await broker.keyward.db.prisma.auditEvent.findMany({ where: { requestId: res.headers["x-request-id"] } });
    expect(JSON.stringify(events.map((e) => [e.reason, e.path, e.details])).toLowerCase()).not.toContain(lowered);
    expect(broker.logs.join("\n").toLowerCase()).not.toContain(lowered);
  });

  it(`${title("SEC-12")}: a transfer coding Keyward cannot decode`, async () => {
    const res = await fetchRaw("/te-compress");
    expect(res.status).toBe(502);
    expect(JSON.parse((res.body as Buffer).toString("utf8")).error.code).toBe("upstream_encoding_unsupported");
    expect((res.body as Buffer).toString("utf8")).not.toContain(secret);
  });
});

/**
 * Go's encoding/json and Rails' ActiveSupport escape `<`, `>` and `&` (and U+2028, U+2029) as `\u003c`,
 * `\u003e`, `\u0026` by default, so that JSON can sit inside HTML: an API written with either that echoes
 * a password or key holding one of them sends it in that spelling.
 */
describe("JSON escapes of encoders that keep JSON safe inside HTML", () => {
  const secret = "pw-<live>&key/0123'456789abcdef";
  const REDACTED = "[redacted-by-keyward]";
  const htmlSafeJson = (value: unknown) =>
    JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  /** Symfony's JsonResponse (and Laravel's) by default: JSON_HEX_TAG, _APOS, _AMP, _QUOT, with `/` escaped as PHP does. */
  const symfonyJson = (value: unknown) =>
    JSON.stringify(value)
      .replace(/\//g, "\\/")
      .replace(/[<>&']/g, (c) => "\\u" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0"))
      .replace(/([^\\])\\"/g, "$1\\u0022");
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    // An API that answers a refused key with the key it was given, as Go's json.Marshal or Symfony writes it.
    upstream = await startUpstream((req, res) => {
      const answer = { error: "key not recognised", key: req.headers["x-api-key"] };
      const body = req.url === "/v1/symfony" ? symfonyJson(answer) : htmlSafeJson(answer);
      res.writeHead(401, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "go", baseUrl: upstream.url, environment: "staging", secret, auth: { type: "header", header: "X-Api-Key", template: "{secret}" } });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "go", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it.each([
    ["Go", "/v1/me", htmlSafeJson],
    ["Symfony", "/v1/symfony", symfonyJson],
  ])(`${title("SEC-13")}: %s`, async (_encoder, path, encode) => {
    const res = await broker.http().get(`/proxy/go${path}`).set("authorization", `Bearer ${token}`);
    expect(res.status).toBe(statusOf("SEC-13"));
    // The upstream's spelling is not one JSON.stringify writes.
    expect(encode(secret)).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(JSON.parse(res.text)).toEqual({ error: "key not recognised", key: REDACTED });
  });
});

/**
 * Spring's JSON converter (Jackson) writes its answer in the charset the request's Accept names:
 * UTF-16 or UTF-32, big- or little-endian. An agent can ask an echoing Spring API for the injected
 * credential in one of them.
 */
describe("answers in the wide charsets an agent can ask an upstream for", () => {
  const secret = "sk-live-wide-0123456789abcdefXYZ";
  const REDACTED = "[redacted-by-keyward]";
  /** A token of the upstream's own, in a log it serves: a detector rule's to find. */
  const GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4";
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  /** Under a grant whose rules detect GitHub tokens. */
  let ruled: string;

  /** Text in UTF-16 or UTF-32 of either byte order, as Jackson's JsonEncoding writes it. */
  const encode = (text: string, charset: string): Buffer => {
    const points = [...text].map((c) => c.codePointAt(0)!);
    if (charset.startsWith("UTF-16")) {
      const le = Buffer.from(text, "utf16le");
      return charset === "UTF-16BE" ? le.swap16() : le;
    }
    const out = Buffer.alloc(points.length * 4);
    points.forEach((point, i) => (charset === "UTF-32BE" ? out.writeUInt32BE(point, i * 4) : out.writeUInt32LE(point, i * 4)));
    return out;
  };
  const decode = (bytes: Buffer, charset: string): string => {
    if (charset.startsWith("UTF-16")) return (charset === "UTF-16BE" ? Buffer.from(bytes).swap16() : bytes).toString("utf16le");
    const points: number[] = [];
    for (let i = 0; i + 4 <= bytes.length; i += 4) points.push(charset === "UTF-32BE" ? bytes.readUInt32BE(i) : bytes.readUInt32LE(i));
    return String.fromCodePoint(...points);
  };

  beforeAll(async () => {
    // Answers a refused key with the key, and a job's log with the token it used, in the charset the
    // Accept header asks for.
    upstream = await startUpstream((req, res) => {
      const charset = /charset=([\w-]+)/i.exec(String(req.headers.accept))?.[1]?.toUpperCase() ?? "UTF-8";
      if (req.url === "/v1/jobs/7/log") {
        const log = Buffer.from(JSON.stringify({ log: `pushing with ${GITHUB_TOKEN}` }));
        const body = charset === "UTF-8" ? log : encode(log.toString(), charset);
        res.writeHead(200, { "content-type": `application/json;charset=${charset}`, "content-length": body.length });
        return res.end(body);
      }
      const text = JSON.stringify({ error: "key not recognised", key: req.headers["x-api-key"] });
      const body = charset === "UTF-8" ? Buffer.from(text) : encode(text, charset);
      res.writeHead(401, { "content-type": `application/json;charset=${charset}`, "content-length": body.length });
      res.end(body);
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "spring", baseUrl: upstream.url, environment: "staging", secret, auth: { type: "header", header: "X-Api-Key", template: "{secret}" } });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "spring", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
    await createGrant(broker, { name: "ruled", agents: [agent.id], upstream: "spring", methods: ["GET"], paths: ["/**"], redact: [{ detector: "github-token" }] });
    ruled = await tokenFor(broker, agent, { grant: "ruled" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it.each(["UTF-16BE", "UTF-32LE"])(`${title("REQ-56")}: %s`, async (charset) => {
    const ask = (accept: string) =>
      request(broker.url).get("/proxy/spring/v1/jobs/7/log").set("authorization", `Bearer ${ruled}`).set("accept", accept);
    const plain = await ask("application/json");
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual({ log: `pushing with ${REDACTED}` });
    const wide = await ask(`application/json;charset=${charset}`)
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(wide.status).toBe(statusOf("REQ-56"));
    const text = (wide.body as Buffer).toString("utf8");
    expect(JSON.parse(text).error.code).toBe("response_unredactable");
    expect((wide.body as Buffer).includes(encode(GITHUB_TOKEN, charset))).toBe(false);
  });

  it.each(["UTF-16LE", "UTF-16BE", "UTF-32LE", "UTF-32BE"])(`${title("REQ-55")}: %s`, async (charset) => {
    const res = await request(broker.url)
      .get("/proxy/spring/v1/me")
      .set("authorization", `Bearer ${token}`)
      .set("accept", `application/json;charset=${charset}`)
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(res.status).toBe(statusOf("REQ-55"));
    const body = res.body as Buffer;
    // The marker is ASCII: what follows it no longer lines up as UTF-16 or UTF-32, so the part before it is
    // decoded (the other byte order's form, one byte off, can take the last byte of the quote before it).
    const at = body.indexOf(REDACTED);
    expect(at).toBeGreaterThan(0);
    expect(decode(body.subarray(0, at), charset)).toMatch(/^\{"error":"key not recognised","key":"?$/);
    expect(body.includes(encode(secret, charset))).toBe(false);
    expect(body.includes(encode(secret.slice(0, 8), charset))).toBe(false);
  });
});

/**
 * Upstreams that echo the injected credential spelled as no JSON API writes it: its bytes in hex (an S3
 * signature error), HTML-escaped (an error page), inside base64 wrapped into lines (a MIME part, a PEM
 * block). The secret holds the characters HTML escapers rewrite.
 */
describe("echoes in hex, HTML and wrapped base64", () => {
  const secret = "sk+live/echo=0123<456789>&abcdef'Z>?X?~";
  const REDACTED = "[redacted-by-keyward]";
  const hex = (text: string, separator: string) => [...Buffer.from(text)].map((b) => b.toString(16).padStart(2, "0")).join(separator);

  const wrap = (text: string, width: number, lineBreak: string) => text.replace(new RegExp(`(.{${width}})(?!$)`, "g"), `$1${lineBreak}`);

  /** HTML escapers as their frameworks write them. */
  const escaping = (table: Record<string, string>) => (text: string) => text.replace(/[&<>"'+=`/]/g, (c) => table[c] ?? c);
  const htmlEscapers: Record<string, (text: string) => string> = {
    // Go's html/template: html.EscapeString's escapes and `+`.
    go: escaping({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "+": "&#43;" }),
    // Python's html.escape(s), quote=True.
    python: escaping({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" }),
    // PHP 8.1's htmlspecialchars (ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML401).
    php: escaping({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;" }),
    // Rails' ERB::Util.html_escape and lodash's escape.
    erb: escaping({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }),
    mustache: escaping({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "/": "&#x2F;", "`": "&#x60;", "=": "&#x3D;" }),
  };

  /** The bodies by path, given the key the upstream received. */
  const bodies: Record<string, (key: string) => string> = {
    // S3's answer to a request whose signature does not match: the canonical request and the string to
    // sign, and their bytes as space-separated hex (upper case here, lower in some S3-compatible stores).
    "/s3": (key) => {
      const canonical = `GET\n/bucket/object\n\nx-api-key:${key}\n\nx-api-key\nUNSIGNED-PAYLOAD`;
      return (
        `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>` +
        `<CanonicalRequestBytes>${hex(canonical, " ").toUpperCase()}</CanonicalRequestBytes>` +
        `<StringToSignBytes>${hex(canonical, " ")}</StringToSignBytes></Error>`
      );
    },
    // Error pages that echo the key through each common HTML escaper, and its Basic form through Go's.
    ...Object.fromEntries(
      Object.entries(htmlEscapers).map(([name, escape]) => [
        `/html/${name}`,
        (key: string) => `<html><body><p>Invalid key: ${escape(key)}</p><input value="${escape(key)}"><pre>${escape(Buffer.from(`me:${key}`).toString("base64"))}</pre></body></html>`,
      ]),
    ),
    // A MIME part (76 characters a line, CRLF) and a PEM block (64, LF) of data holding the key, once for
    // each place the line break can fall in the key's span.
    "/mime": (key) => Array.from({ length: 76 }, (_, pad) => wrap(Buffer.from(`${"p".repeat(pad)}key=${key};`).toString("base64"), 76, "\r\n")).join("\r\n--part\r\n"),
    "/pem": (key) => Array.from({ length: 64 }, (_, pad) => `-----BEGIN DATA-----\n${wrap(Buffer.from(`${"p".repeat(pad)}key=${key};`).toString("base64"), 64, "\n")}\n-----END DATA-----`).join("\n"),
    // A hex dump with nothing between the bytes.
    "/hexdump": (key) => `{"received":"${hex(`x-api-key: ${key}`, "")}","upper":"${hex(key, "").toUpperCase()}"}`,
  };

  let echo: EchoingBroker;
  beforeAll(async () => {
    echo = await echoingBroker(secret, bodies, (path) => (path === "/s3" ? "application/xml" : "text/html; charset=utf-8"));
  });
  afterAll(() => echo?.close());
  const get = (path: string) => echo.get(path);

  it.each(["/s3", "/hexdump"])(`${title("SEC-16")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-16"));
    const text = res.body as string;
    for (const spelling of [hex(secret, ""), hex(secret, " ")]) {
      expect(text.toLowerCase()).not.toContain(spelling);
      // Not even a third of the secret's bytes is left around the marker.
      expect(text.toLowerCase()).not.toContain(spelling.slice(0, spelling.length / 3));
    }
    expect(text).toContain(REDACTED);
    expect(text).toContain(path === "/s3" ? "<Code>SignatureDoesNotMatch</Code>" : `"received":"${hex("x-api-key: ", "")}${REDACTED}"`);
  });

  it.each(Object.keys(htmlEscapers))(`${title("SEC-17")}: %s`, async (name) => {
    const escape = htmlEscapers[name]!;
    const res = await get(`/html/${name}`);
    expect(res.status).toBe(statusOf("SEC-17"));
    const text = res.body as string;
    // The upstream's spelling is not the raw secret.
    expect(escape(secret)).not.toBe(secret);
    expect(text).toBe(`<html><body><p>Invalid key: ${REDACTED}</p><input value="${REDACTED}"><pre>${text.split("<pre>")[1]!.split("</pre>")[0]}</pre></body></html>`);
    // The Basic form keeps what depends on the user name around the marker, and nothing of the key.
    const basic = text.split("<pre>")[1]!.split("</pre>")[0]!;
    expect(basic).toContain(REDACTED);
    expect(basic.replace(REDACTED, "").length).toBeLessThanOrEqual(8);
  });

  it.each(["/mime", "/pem", "/mime?streamed", "/pem?streamed"])(`${title("SEC-19")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-19"));
    const text = res.body as string;
    const blocks = path.startsWith("/mime") ? 76 : 64;
    expect(text.split(REDACTED)).toHaveLength(blocks + 1);
    // Taken out of its lines, no block decodes to 12 bytes of the key.
    const unwrapped = text.replace(/\r|\n/g, "");
    for (const part of unwrapped.split(/[^A-Za-z0-9+/=]+/)) {
      for (const shift of ["", "A", "AA", "AAA"]) expect(Buffer.from(shift + part, "base64").toString("latin1")).not.toMatch(/sk\+live\/echo=0123|<456789>&abcdef/);
    }
  });
});

/**
 * Spellings of the injected credential that encoders in common use write and the forms above once
 * missed. The secret holds the characters those encoders rewrite, as a base64 key holds `+`, `/`, `=`.
 */
describe("echoes as other encoders and dumps write them", () => {
  const secret = "sk+live/json=0123<456789>&abc'def\"XY`Z==";
  const REDACTED = "[redacted-by-keyward]";
  const unicode = (c: string, hex: (h: string) => string = (h) => h) => "\\u" + hex(c.charCodeAt(0).toString(16).padStart(4, "0"));
  /** A JSON string's contents as JSON.stringify writes them, then the characters `escaped` as `\u` escapes in `hex`'s case. */
  const jsonString = (text: string, escaped: RegExp, hex: (h: string) => string) =>
    JSON.stringify(text)
      .slice(1, -1)
      .replace(/\\"/g, '"')
      .replace(escaped, (c) => unicode(c, hex))
      .replace(/"/g, '\\"');
  /** Gson (Java, Kotlin) by default: HTML-safe, `<`, `>`, `&`, `=` and `'` as lower-case `\u` escapes. */
  const gson = (text: string) => jsonString(text, /[<>&='\u2028\u2029]/g, (h) => h);
  /** .NET's System.Text.Json by default: `"`, `&`, `'`, `+`, `<`, `>`, backtick and non-ASCII as upper-case `\u` escapes. */
  const dotnet = (text: string) => jsonString(text, /["&'+<>`\u0080-\uffff]/g, (h) => h.toUpperCase());
  /** Go's encoding/json: `<`, `>`, `&` as lower-case `\u` escapes. */
  const goJson = (text: string) => jsonString(text, /[<>&\u2028\u2029]/g, (h) => h);
  /** HTML-escaped: `&`, `<`, `>` by name, and the characters in `more` as given. */
  const escapeHtml = (text: string, more: Record<string, string>) => text.replace(/[&<>"'+]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", ...more })[c] ?? c);
  const hex = (text: string, separator: string) => [...Buffer.from(text)].map((b) => b.toString(16).padStart(2, "0")).join(separator);
  const wrap = (text: string, width: number, lineBreak: string) => text.replace(new RegExp(`(.{${width}})(?!$)`, "g"), `$1${lineBreak}`);
  /** Quoted-printable as Python's email package writes it: `=` and non-ASCII as `=XX`, lines of at most 76 characters, the `=` of a soft break included. */
  const quotedPrintable = (text: string) => {
    const units = [...Buffer.from(text)].map((b) => ((b >= 33 && b <= 126 && b !== 61) || b === 32 ? String.fromCharCode(b) : "=" + b.toString(16).toUpperCase().padStart(2, "0")));
    const lines = [""];
    for (const unit of units) {
      if (lines.at(-1)!.length + unit.length > 75) lines.push("");
      lines[lines.length - 1] += unit;
    }
    return lines.join("=\r\n");
  };
  const fromQuotedPrintable = (text: string) => Buffer.from(text.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");

  /** The bodies by path, given the key the upstream received. */
  const bodies: Record<string, (key: string) => string> = {
    "/json/gson": (key) => `{"error":"key not recognised","key":"${gson(key)}"}`,
    "/json/dotnet": (key) => `{"error":"key not recognised","key":"${dotnet(key)}"}`,
    // The key's bytes as a fingerprint: OpenSSL's (upper case, colons), Python's bytes.hex(":"), .NET's
    // BitConverter.ToString (upper case, dashes), and with lower-case dashes.
    "/hex/colons": (key) => `SHA1 Fingerprint=${hex(key, ":").toUpperCase()}\nkey: ${hex(key, ":")}\n`,
    "/hex/dashes": (key) => `{"keyBytes":"${hex(key, "-").toUpperCase()}","lower":"${hex(key, "-")}"}`,
    // A PEM block (64, LF) and a MIME part (76, CRLF) of data holding the key, as a JSON string: the line
    // breaks are the escapes `\n` and `\r\n`. Once for each place a break can fall in the key's span.
    "/json/pem": (key) =>
      JSON.stringify(Array.from({ length: 64 }, (_, pad) => `-----BEGIN DATA-----\n${wrap(Buffer.from(`${"p".repeat(pad)}key=${key};`).toString("base64"), 64, "\n")}\n-----END DATA-----`)),
    "/json/mime": (key) => JSON.stringify({ parts: Array.from({ length: 76 }, (_, pad) => wrap(Buffer.from(`${"p".repeat(pad)}key=${key};`).toString("base64"), 76, "\r\n")) }),
    // The Authorization header the upstream received, echoed by an ASP.NET Core service: the Basic
    // credential's base64 as System.Text.Json writes it (`+` as `\u002B`).
    "/json/dotnet/basic": (key) => `{"authorization":"${dotnet(`Basic ${Buffer.from(`user:${key}`).toString("base64")}`)}"}`,
    // An error page rendered as HTML, then returned inside JSON: Go's html/template in encoding/json, and
    // the OWASP Java Encoder in Gson.
    "/json/html/go": (key) => `{"html":"${goJson(`<p>Invalid key: ${escapeHtml(key, { '"': "&#34;", "'": "&#39;", "+": "&#43;" })}</p>`)}"}`,
    "/json/html/gson": (key) => `{"html":"${gson(`<p>Invalid key: ${escapeHtml(key, { '"': "&#34;", "'": "&#39;" })}</p>`)}"}`,
    // An e-mail echoed as its quoted-printable body, lines cut at 76 characters by soft line breaks (`=`
    // and CRLF), once for each place a break can fall in the key's span.
    "/mail": (key) =>
      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
      Array.from({ length: 76 }, (_, pad) => quotedPrintable(`${"p".repeat(pad)} key=${key};`)).join("\r\n"),
  };

  let echo: EchoingBroker;
  beforeAll(async () => {
    echo = await echoingBroker(secret, bodies, (path) => (path.startsWith("/json") ? "application/json" : "text/plain; charset=utf-8"));
  });
  afterAll(() => echo?.close());
  const get = (path: string) => echo.get(path);

  it.each([
    ["/json/gson", gson],
    ["/json/dotnet", dotnet],
  ] as const)(`${title("SEC-28")}: %s`, async (path, encode) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-28"));
    // The upstream's spelling is none JSON.stringify writes, and it decodes to the secret.
    expect(encode(secret)).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(JSON.parse(`"${encode(secret)}"`)).toBe(secret);
    expect(JSON.parse(res.body as string)).toEqual({ error: "key not recognised", key: REDACTED });
  });

  it.each(["/hex/colons", "/hex/dashes"])(`${title("SEC-29")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-29"));
    const text = (res.body as string).toLowerCase();
    for (const separator of [":", "-"]) {
      const spelling = hex(secret, separator);
      expect(text).not.toContain(spelling);
      // Not even a third of the secret's bytes is left around the marker.
      expect(text).not.toContain(spelling.slice(0, spelling.length / 3));
    }
    expect(text.split(REDACTED)).toHaveLength(3);
    expect(res.body).toMatch(path === "/hex/colons" ? /^SHA1 Fingerprint=\[redacted-by-keyward\]\nkey: / : /^\{"keyBytes":"\[redacted-by-keyward\]","lower":"/);
  });

  it.each(["/json/pem", "/json/mime", "/json/pem?streamed", "/json/mime?streamed"])(`${title("SEC-30")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-30"));
    const text = res.body as string;
    expect(text.split(REDACTED)).toHaveLength((path.startsWith("/json/pem") ? 64 : 76) + 1);
    // Still JSON; taken out of its lines, no block decodes to 12 bytes of the key.
    const values = JSON.stringify(JSON.parse(text));
    const unwrapped = values.replace(/\\r|\\n/g, "");
    for (const part of unwrapped.split(/[^A-Za-z0-9+/=]+/)) {
      for (const shift of ["", "A", "AA", "AAA"]) expect(Buffer.from(shift + part, "base64").toString("latin1")).not.toMatch(/sk\+live\/json=012|<456789>&abc/);
    }
  });

  it.each(["/mail", "/mail?streamed"])(`${title("SEC-31")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-31"));
    const text = res.body as string;
    expect(text.split(REDACTED)).toHaveLength(76 + 1);
    // Decoded as the agent's mail client would, not 12 characters of the key are left.
    const decoded = fromQuotedPrintable(text);
    for (let i = 0; i + 12 <= secret.length; i++) expect(decoded).not.toContain(secret.slice(i, i + 12));
    expect(decoded).toContain(`p key=${REDACTED};`);
  });

  it.each(["/json/html/go", "/json/html/gson"])(`${title("SEC-32")}: %s`, async (path) => {
    const res = await get(path);
    expect(res.status).toBe(statusOf("SEC-32"));
    const html = JSON.parse(res.body as string).html as string;
    // The upstream's spelling is none the HTML or the JSON forms alone are.
    expect(bodies[path]!(secret)).toContain("\\u0026amp;");
    expect(html).toBe(`<p>Invalid key: ${REDACTED}</p>`);
  });

  it(title("SEC-33"), async () => {
    const res = await get("/json/dotnet/basic");
    expect(res.status).toBe(statusOf("SEC-33"));
    // The upstream's spelling has `+` escaped where the key's base64 has one.
    expect(bodies["/json/dotnet/basic"]!(secret)).toContain("\\u002B");
    const basic = JSON.parse(res.body as string).authorization as string;
    expect(basic).toMatch(/^Basic .{0,8}\[redacted-by-keyward\].{0,8}$/);
  });
});

/**
 * A broker in front of an upstream that answers 403 with `bodies[path]` of the key it was sent (`?streamed`:
 * in writes of 97 bytes, of unknown length, so that the broker streams it); `get(path)` is the body an
 * agent is shown, as text whatever its type.
 */
async function echoingBroker(secret: string, bodies: Record<string, (key: string) => string>, contentType: (path: string) => string) {
  const upstream = await startUpstream((req, res) => {
    const [path, streamed] = (req.url ?? "").split("?");
    const body = Buffer.from(bodies[path!]?.(String(req.headers["x-api-key"])) ?? "not found");
    res.writeHead(403, { "content-type": contentType(path!) });
    if (streamed === undefined) return res.end(body);
    let at = 0;
    const next = () => (at >= body.length ? res.end() : res.write(body.subarray(at, (at += 97)), () => setImmediate(next)));
    next();
  });
  const store = newStore();
  const broker = await startBroker(store);
  await createUpstream(broker, { name: "echo", baseUrl: upstream.url, environment: "staging", secret, auth: { type: "header", header: "X-Api-Key", template: "{secret}" } });
  const agent = await createAgent(broker, "agent");
  await createGrant(broker, { name: "g", agents: [agent.id], upstream: "echo", methods: ["GET"], paths: ["/**"] });
  const token = await tokenFor(broker, agent, { grant: "g" });
  return {
    get: (path: string) =>
      broker
        .http()
        .get(`/proxy/echo${path}`)
        .set("authorization", `Bearer ${token}`)
        .buffer(true)
        .parse((res, done) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => done(null, Buffer.concat(chunks).toString("utf8")));
        }),
    async close() {
      await broker.close();
      await upstream.close();
      await store.drop();
    },
  };
}
type EchoingBroker = Awaited<ReturnType<typeof echoingBroker>>;
