import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { base64Alignments, hexForms, htmlEscaped, MIN_FORM_LENGTH, secretForms, wideForms } from "../../../src/redaction/forms.js";
import { compileRedaction, matchedRanges, REDACTED, redactHeaders, redactText, replaceRanges, secretsCombiner } from "../../../src/redaction/redaction.js";
import { decodersFor, redactResponse, type ResponseOutcome } from "../../../src/redaction/response.js";
import { cutWindow, MAX_HELD_BYTES, RedactingStream } from "../../../src/redaction/stream.js";

const SECRET = "sk_live_Zx9/+q?a&b=c d\"é";

/** Every way the tests expect SECRET to be found: each must come back redacted. */
const spellings = [
  SECRET,
  encodeURIComponent(SECRET),
  encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()), // lower-case hex
  new URLSearchParams({ s: SECRET }).toString().slice(2),
  JSON.stringify(SECRET).slice(1, -1),
  JSON.stringify({ a: SECRET }).replace(/\//g, "\\/"),
  JSON.stringify(SECRET).slice(1, -1).replace(/é/, "\\u00e9"),
  JSON.stringify(SECRET).slice(1, -1).replace(/&/, "\\u0026"), // Go's encoding/json, Rails
  JSON.stringify(SECRET).slice(1, -1).replace(/&/, "\\u0026").replace(/=/, "\\u003d"), // Gson
  JSON.stringify(SECRET).slice(1, -1).replace(/\+/, "\\u002B").replace(/&/, "\\u0026").replace(/\\"/, "\\u0022").replace(/é/, "\\u00E9"), // .NET's System.Text.Json
  SECRET.replace("=", "=3D").replace("é", "=C3=A9"), // quoted-printable, an e-mail body
  Buffer.from(SECRET).toString("base64"),
  Buffer.from(SECRET).toString("base64url"),
  Buffer.from("x" + SECRET).toString("base64"),
  Buffer.from("xy" + SECRET).toString("base64url"),
  Buffer.from(`user:${SECRET}`).toString("base64"),
  Buffer.from(`user:${SECRET}`).toString("base64").replace(/\+/g, "\\u002B"), // in JSON by .NET's System.Text.Json
  SECRET.replace("&", "&amp;").replace('"', "&quot;"), // Rails' ERB, Python's html.escape, PHP's htmlspecialchars
  SECRET.replace("&", "&amp;").replace("+", "&#43;").replace('"', "&#34;"), // Go's html/template
  SECRET.replace("&", "&amp;").replace("/", "&#x2F;").replace("=", "&#x3D;").replace('"', "&quot;"), // Mustache
  SECRET.replace("&", "\\u0026amp;").replace("+", "\\u0026#43;").replace('"', "\\u0026#34;"), // Go's html/template, then its encoding/json
  Buffer.from(SECRET).toString("hex"),
  Buffer.from(SECRET).toString("hex").toUpperCase(),
  Buffer.from(`GET\n${SECRET}`).toString("hex").replace(/(..)(?!$)/g, "$1 ").toUpperCase(), // S3's CanonicalRequestBytes
  Buffer.from(SECRET).toString("hex").replace(/(..)(?!$)/g, "$1:").toUpperCase(), // OpenSSL's fingerprint
  Buffer.from(SECRET).toString("hex").replace(/(..)(?!$)/g, "$1-").toUpperCase(), // .NET's BitConverter.ToString
];

describe("wideForms", () => {
  it("are the secret, as sent and JSON-escaped, in UTF-16 and UTF-32 of either byte order", () => {
    const forms = wideForms(SECRET).map((f) => f.toString("hex"));
    const utf16le = Buffer.from(SECRET, "utf16le");
    expect(forms).toContain(utf16le.toString("hex"));
    expect(forms).toContain(Buffer.from(utf16le).swap16().toString("hex"));
    expect(forms).toContain(Buffer.from(JSON.stringify(SECRET).slice(1, -1), "utf16le").toString("hex"));
    const utf32be = Buffer.concat(Array.from(SECRET, (c) => Buffer.from([0, 0, c.codePointAt(0)! >> 8, c.codePointAt(0)! & 0xff])));
    expect(forms).toContain(utf32be.toString("hex"));
    expect(wideForms("short")).toEqual([]);
  });
});

describe("secretForms", () => {
  it.each(spellings.map((s, i) => [i, s]))("spelling %i contains one of the forms", (_i, spelling) => {
    expect(secretForms(SECRET).some((form) => spelling.includes(form))).toBe(true);
  });

  it("leaves out forms shorter than the minimum, and duplicates", () => {
    const forms = secretForms("abcdefgh");
    expect(forms).toContain("abcdefgh");
    expect(new Set(forms).size).toBe(forms.length);
    expect(forms.every((f) => f.length >= MIN_FORM_LENGTH)).toBe(true);
    expect(secretForms("short")).toEqual([]);
  });

  it("HTML escapes are those of the common escapers, only where they differ from the text", () => {
    expect(htmlEscaped("sk_live_0123456789abcdef")).toEqual([]);
    const forms = htmlEscaped(`a&b<c>d"e'f+g/h=i`);
    for (const form of [
      "a&amp;b&lt;c&gt;d&#34;e&#39;f+g/h=i", // Go's html.EscapeString
      "a&amp;b&lt;c&gt;d&#34;e&#39;f&#43;g/h=i", // Go's html/template
      "a&amp;b&lt;c&gt;d&#34;e&#39;f&#43;g/h&#61;i", // Go's html/template, unquoted attribute
      "a&amp;b&lt;c&gt;d&quot;e&#x27;f+g/h=i", // Python's html.escape
      "a&amp;b&lt;c&gt;d&quot;e&#039;f+g/h=i", // PHP's htmlspecialchars
      "a&amp;b&lt;c&gt;d&quot;e&#39;f+g&#x2F;h&#x3D;i", // Mustache.js
      "a&amp;b&lt;c&gt;d&quot;e&#x27;f&#x2B;g/h=i", // ASP.NET Core's HtmlEncoder
      "a&amp;b&lt;c&gt;d&quot;e&#x27;f&#x2b;g&#x2f;h&#x3d;i", // OWASP ESAPI
    ]) {
      expect(forms).toContain(form);
    }
    expect(new Set(forms).size).toBe(forms.length);
    // A base64 value with `/` and `+`: only the escapers that write either differ.
    expect(htmlEscaped("ab/cd+ef")).toEqual(["ab/cd&#43;ef", "ab&#x2F;cd+ef", "ab/cd&#x2B;ef", "ab&#x2f;cd&#x2b;ef"]);
  });

  it("hex forms are the bytes in either case, run together and separated by spaces, colons or dashes", () => {
    expect(hexForms(Buffer.from("AWS4\né"))).toEqual([
      "415753340ac3a9",
      "415753340AC3A9",
      "41 57 53 34 0a c3 a9",
      "41 57 53 34 0A C3 A9",
      "41:57:53:34:0a:c3:a9",
      "41:57:53:34:0A:C3:A9",
      "41-57-53-34-0a-c3-a9",
      "41-57-53-34-0A-C3-A9",
    ]);
  });

  it("base64 alignments are the characters that depend on the secret alone", () => {
    const secret = Buffer.from("0123456789");
    for (let offset = 0; offset < 3; offset++) {
      const form = base64Alignments(secret)[offset]!;
      for (const prefix of ["a", "bb", "ccc"].filter((p) => p.length % 3 === offset)) {
        for (const suffix of ["", "z", "zz"]) {
          expect(Buffer.concat([Buffer.from(prefix), secret, Buffer.from(suffix)]).toString("base64")).toContain(form);
        }
      }
    }
  });
});

describe("redaction of whole values", () => {
  const redaction = compileRedaction([SECRET]);

  it.each(spellings.map((s, i) => [i, s]))("replaces spelling %i and leaves the text around it", (_i, spelling) => {
    const { text, count } = redactText(redaction, `before ${spelling} after`);
    expect(count).toBeGreaterThanOrEqual(1);
    expect(text.startsWith("before ")).toBe(true);
    expect(text.endsWith(" after")).toBe(true);
    expect(text).toContain(REDACTED);
    for (const form of secretForms(SECRET)) expect(text).not.toContain(form);
  });

  it("merges overlapping forms into one redaction and counts separate ones", () => {
    const data = Buffer.from(`${SECRET}${SECRET} and ${SECRET}`);
    expect(matchedRanges(redaction, data)).toHaveLength(2);
    expect(redactText(redaction, "nothing here").count).toBe(0);
  });

  it("redacts every header value: Location, Set-Cookie arrays, Link", () => {
    const { headers, count } = redactHeaders(redaction, {
      location: `https://api.example/next?key=${encodeURIComponent(SECRET)}`,
      "set-cookie": ["a=1", `session=${encodeURIComponent(SECRET)}; Path=/`],
      link: `<https://api.example/p2?key=${encodeURIComponent(SECRET)}>; rel="next"`,
      "content-type": "application/json",
    });
    expect(count).toBe(3);
    expect(headers.location).toBe(`https://api.example/next?key=${REDACTED}`);
    expect(headers["set-cookie"]).toEqual(["a=1", `session=${REDACTED}; Path=/`]);
    expect(headers["content-type"]).toBe("application/json");
  });

  it("compares header names only with the forms a name can hold: a header that holds one is dropped", () => {
    const secret = "name-key+0123456789/abcdef";
    const compiled = compileRedaction([secret]);
    expect(compiled.nameForms.length).toBeGreaterThan(0);
    expect(compiled.nameForms.every((form) => /^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(form))).toBe(true);
    // Left out: the spaced hex, the HTML escapes (`;`), the `/` of the raw secret itself.
    expect(compiled.nameForms).not.toContain(secret);
    const hexName = `x-${Buffer.from(secret).toString("hex")}`;
    const { headers, count } = redactHeaders(compiled, { [hexName]: "1", [`x-${encodeURIComponent(secret).toLowerCase()}`]: "2", "x-kept": "3" });
    expect(headers).toEqual({ "x-kept": "3" });
    expect(count).toBe(2);
  });

  it("compiles the same list once, and combines two lists into the same array while they stay the same", () => {
    const list = Object.freeze([SECRET]);
    expect(compileRedaction(list)).toBe(compileRedaction(list));
    const combine = secretsCombiner();
    const other = Object.freeze(["previous-secret-value"]);
    expect(combine([list, other])).toBe(combine([list, other]));
    expect(combine([list, other])).toEqual([SECRET, "previous-secret-value"]);
    expect(combine([list, Object.freeze(["next-secret-value"])])).not.toBe(combine([list, other]));
    // A retired list whose overlap ended drops out: another combination.
    const older = Object.freeze(["older-secret-value"]);
    expect(combine([list, other, older])).toEqual([SECRET, "previous-secret-value", "older-secret-value"]);
    expect(combine([list, other])).not.toBe(combine([list, other, older]));
  });
});

/** Splits data into chunks (copies: a RedactingStream writes over the chunks it is given) at the given cut points. */
const chunked = (data: Buffer, cuts: number[]) => {
  const points = [0, ...cuts.filter((c) => c > 0 && c < data.length).sort((a, b) => a - b), data.length];
  return points.slice(1).map((end, i) => Buffer.from(data.subarray(points[i], end)));
};

async function streamThrough(chunks: Buffer[], secrets: string[]): Promise<{ text: string; count: number }> {
  let recorded = -1;
  const stream = new RedactingStream(compileRedaction(secrets), async (count) => {
    recorded = count;
  });
  const out: Buffer[] = [];
  stream.on("data", (c: Buffer) => out.push(c));
  const ended = new Promise((resolve) => stream.on("end", resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return { text: Buffer.concat(out).toString("utf8"), count: recorded };
}

/** A buffer with memory of its own (small ones from Buffer.from share a pool), so that where output lives shows. */
const unpooled = (text: string) => {
  const bytes = Buffer.from(text);
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
};

/** Runs of the marker as one. */
const collapsed = (text: string) => text.replace(/(\[redacted-by-keyward\])+/g, REDACTED);

/** cutWindow on one buffer (nothing held), its parts joined. */
const cutOne = (redaction: ReturnType<typeof compileRedaction>, data: Buffer, final: boolean) => {
  const { out, rest, count } = cutWindow(redaction, Buffer.alloc(0), data, final);
  return { out: Buffer.concat(out), rest, count };
};

describe("RedactingStream", () => {
  const body = Buffer.from(
    JSON.stringify({ echo: { authorization: `Bearer ${SECRET}`, url: `/x?key=${encodeURIComponent(SECRET)}` }, basic: Buffer.from(`u:${SECRET}`).toString("base64") }),
  );
  const expected = redactText(compileRedaction([SECRET]), body.toString("utf8"));

  it("redacts secrets cut across chunk boundaries at every position", async () => {
    for (let cut = 1; cut < body.length; cut += 3) {
      const result = await streamThrough(chunked(body, [cut, cut + 5]), [SECRET]);
      expect(result.text, `cut at ${cut}`).toBe(expected.text);
      expect(result.count).toBe(expected.count);
    }
  });

  it("redacts with one-byte chunks", async () => {
    const result = await streamThrough(chunked(body, Array.from({ length: body.length }, (_, i) => i)), [SECRET]);
    expect(result.text).toBe(expected.text);
    expect(expected.count).toBe(3);
  });

  it("holds back no more than the longest form, however long the body", async () => {
    const redaction = compileRedaction([SECRET]);
    const data = Buffer.alloc(1_000_000, "a");
    const { out, rest } = cutOne(redaction, data, false);
    expect(rest.length).toBeLessThanOrEqual(redaction.maxLength - 1);
    expect(out.length + rest.length).toBe(data.length);
  });

  it("holds back the same bytes whether or not they could begin a form: the tail after the last line feed", () => {
    const redaction = compileRedaction([SECRET]);
    const start = SECRET.slice(0, 5);
    // A guess that begins the secret and one that does not, of one length: held alike (REQ-57).
    for (const guess of [start, "zzzzz"]) {
      const { out, rest } = cutOne(redaction, Buffer.from(`event: echo\ndata: ${guess}`), false);
      expect(out.toString()).toBe("event: echo\n");
      expect(rest.toString()).toBe(`data: ${guess}`);
    }
    // A chunk ending at a line feed goes out whole: an event stream is not delayed.
    expect(cutOne(redaction, Buffer.from(`data: ${start}\n\n`), false)).toMatchObject({ rest: Buffer.alloc(0) });
    // A secret holding a line feed: no line is safe to release, the whole tail is held.
    const multiline = compileRedaction(["first-line-of\nthe-secret"]);
    const { rest } = cutOne(multiline, Buffer.from("body\nfirst-line-of\n"), false);
    expect(rest.toString()).toBe("body\nfirst-line-of\n".slice(-(multiline.maxLength - 1)));
  });

  it("bounds what a chain of overlapping forms holds back", () => {
    const redaction = compileRedaction(["aaaaaaaa"]);
    const { rest, count } = cutOne(redaction, Buffer.alloc(MAX_HELD_BYTES * 2, "a"), false);
    expect(rest.length).toBeLessThanOrEqual(redaction.maxLength);
    expect(count).toBe(1);
  });

  it("redacts what redactText does, for bodies dense with overlapping forms cut into chunks of every size", async () => {
    const secrets = [SECRET, "abcabcabcabc", "previous-secret-value"];
    const forms = [...secrets, encodeURIComponent(SECRET), Buffer.from(`u:${SECRET}`).toString("base64"), "abcabcabcabcabcabc", JSON.stringify(SECRET).slice(1, -1)];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 40; round++) {
      const pieces: string[] = [];
      for (let i = 0; i < 60; i++) pieces.push(random(3) === 0 ? forms[random(forms.length)]!.slice(0, 1 + random(40)) : random(2) === 0 ? forms[random(forms.length)]! : "xyzab".slice(random(5)));
      const body = Buffer.from(pieces.join(""));
      const expected = redactText(compileRedaction(secrets), body.toString("utf8"));
      const cuts: number[] = [];
      for (let at = 0; at < body.length; at += 1 + random(round < 20 ? 8 : 120)) cuts.push(at);
      const result = await streamThrough(chunked(body, cuts), secrets);
      // Touching forms cut apart by a chunk boundary come out as two markers rather than one.
      expect(collapsed(result.text), `round ${round}`).toBe(collapsed(expected.text));
      expect(result.count, `round ${round}`).toBeGreaterThanOrEqual(expected.count);
    }
  });

  it("writes a window's output over the chunk's own bytes, with no new buffer, where the replacements make room", () => {
    const secret = "a-long-upstream-secret-value";
    const redaction = compileRedaction([secret]);
    // Held: the head of a secret cut by the previous chunk's end; the chunk: its tail, then two more.
    const held = Buffer.from(secret.slice(0, 10));
    // Longer than the longest form (the secret in UTF-32): a shorter chunk is joined to what was held.
    const tail = " three" + ".".repeat(redaction.maxLength);
    const chunk = unpooled(`${secret.slice(10)} one ${secret} two ${secret}${tail}`);
    const { out, rest, count } = cutWindow(redaction, held, chunk, true);
    expect(out).toHaveLength(1);
    expect(out[0]!.toString()).toBe(`${REDACTED} one ${REDACTED} two ${REDACTED}${tail}`);
    expect(out[0]!.buffer).toBe(chunk.buffer);
    expect(rest.length).toBe(0);
    expect(count).toBe(3);
  });

  it("sends a secret cut by the previous chunk as a part of its own when the chunk has no room for it, the rest in place", () => {
    // As long as the marker: replacing it makes no room.
    const secret = "x".repeat(REDACTED.length - 5) + "-sec-";
    const redaction = compileRedaction([secret]);
    const held = Buffer.from(secret.slice(0, 7));
    const tail = " two" + ".".repeat(redaction.maxLength);
    const chunk = unpooled(`${secret.slice(7)} one ${secret}${tail}`);
    const { out, count } = cutWindow(redaction, held, chunk, true);
    expect(out.map(String)).toEqual([REDACTED, ` one ${REDACTED}${tail}`]);
    expect(out[1]!.buffer).toBe(chunk.buffer);
    expect(count).toBe(2);
  });

  it("leaves the chunk as it was when the output does not fit in it, and joins the parts instead", () => {
    // Forms shorter than the marker: each replacement is longer than what it replaces.
    const redaction = compileRedaction(["shortsecret"]);
    const chunk = unpooled("x shortsecret y shortsecret z");
    const original = Buffer.from(chunk);
    const { out } = cutWindow(redaction, Buffer.from("held "), chunk, true);
    expect(out.map(String)).toEqual([`held x ${REDACTED} y ${REDACTED} z`]);
    expect(out[0]!.buffer).not.toBe(chunk.buffer);
    expect(chunk.equals(original)).toBe(true);
  });

  it("passes bytes through unchanged when there is nothing to redact", async () => {
    const result = await streamThrough([body], []);
    expect(result.text).toBe(body.toString("utf8"));
    expect(result.count).toBe(0);
  });
});

describe("redactResponse", () => {
  const redaction = compileRedaction([SECRET]);
  const read = async (stream: Readable) => {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };

  it("decodes a gzip body, drops Content-Length and Content-Encoding, and records the count before the end", async () => {
    const outcomes: ResponseOutcome[] = [];
    const plain = `{"token":"${SECRET}"}`;
    const shown = redactResponse(
      redaction,
      {
        headers: { "content-encoding": "gzip", "content-length": "99", location: `/?k=${encodeURIComponent(SECRET)}` },
        body: Readable.from([gzipSync(plain)]),
      },
      async (outcome) => {
        outcomes.push(outcome);
      },
    );
    expect(shown.headers).toEqual({ location: `/?k=${REDACTED}` });
    expect(await read(shown.body)).toBe(`{"token":"${REDACTED}"}`);
    expect(outcomes).toEqual([{ redactions: 2, complete: true }]);
  });

  it("a failed record cuts the body short", async () => {
    const shown = redactResponse(redaction, { headers: {}, body: Readable.from([Buffer.from("hello world, a body")]) }, async () => {
      throw new Error("audit down");
    });
    await expect(read(shown.body)).rejects.toThrow("audit down");
  });

  it("records an abandoned body as incomplete", async () => {
    const outcomes: ResponseOutcome[] = [];
    const upstream = new Readable({ read() {} });
    const shown = redactResponse(redaction, { headers: {}, body: upstream }, async (o) => {
      outcomes.push(o);
    });
    upstream.push(Buffer.from(`x ${SECRET} y`));
    shown.body.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect(outcomes).toEqual([{ redactions: 0, complete: false }]);
  });

  it("refuses encodings it cannot decode, and reads stacked ones in reverse", () => {
    expect(() => decodersFor("zstd")).toThrow(/cannot redact/);
    expect(decodersFor("gzip, br")).toHaveLength(2);
    expect(decodersFor("identity")).toEqual([]);
    expect(decodersFor(undefined)).toEqual([]);
  });
});

describe("base64 wrapped into lines", () => {
  const secret = "sk_live_wrapped_0123456789abcdefXYZ";
  const redaction = compileRedaction([secret]);
  /** A body with its secrets replaced, as an answer read whole is. */
  const redactBody = (text: string) => {
    const ranges = matchedRanges(redaction, Buffer.from(text));
    return { text: replaceRanges(Buffer.from(text), ranges).toString(), count: ranges.length };
  };
  /** Base64 of `pad` bytes, the secret and some more, wrapped every `width` characters with `lineBreak`. */
  const wrapped = (pad: number, width: number, lineBreak: string) =>
    Buffer.from("p".repeat(pad) + secret + " and the rest of the document")
      .toString("base64")
      .replace(new RegExp(`(.{${width}})(?!$)`, "g"), `$1${lineBreak}`);
  /** What is left of the secret's base64 once the breaks and markers are taken out: nothing of it. */
  const leftOf = (text: string) => text.replace(/\r|\n/g, "").split(REDACTED);

  it.each([
    ["MIME, CRLF", 76, "\r\n"],
    ["PEM, LF", 64, "\n"],
  ])("is found wherever the break falls in the secret's span: %s", (_name, width, lineBreak) => {
    for (let pad = 0; pad < width; pad++) {
      const text = wrapped(pad, width, lineBreak);
      const { text: redacted, count } = redactBody(`{"data":"${text}"}`);
      expect(count, `pad ${pad}`).toBe(1);
      const encoded = Buffer.from("p".repeat(pad) + secret).toString("base64");
      // Not 8 base64 characters of the secret's span are left on either side of the marker.
      for (const part of leftOf(redacted)) expect(encoded.slice(Math.ceil((pad * 8) / 6) + 4, Math.floor(((pad + secret.length) * 8) / 6) - 4)).not.toContain(part.slice(-8));
    }
  });

  it("needs lines of wrapped base64: a line feed after a short line, or after other text, is no break in a form", () => {
    const [form] = base64Alignments(Buffer.from(secret));
    const half = form!.length >> 1;
    expect(redactBody(`note: ${form!.slice(0, half)}\n${form!.slice(half)}`).count).toBe(0);
    // At the data's start what came before is unknown: taken as a line of wrapped base64.
    expect(redactBody(`${form!.slice(0, half)}\n${form!.slice(half)}`).count).toBe(1);
    expect(redactBody(`${"A".repeat(64)}${form!.slice(0, half)}\n${form!.slice(half)}`).count).toBe(1);
    expect(redactBody(`${"A".repeat(64)}${form!.slice(0, half)}\n\n${form!.slice(half)}`).count).toBe(0);
  });

  it("is found in a stream cut at every position, and a line of wrapped base64 is held back with what follows", async () => {
    const text = `{"data":"x"}\n` + wrapped(30, 64, "\r\n") + "\n";
    const whole = redactBody(text);
    expect(whole.count).toBe(1);
    for (let cut = 1; cut < text.length; cut++) {
      expect(await streamThrough(chunked(Buffer.from(text), [cut]), [secret]), `cut ${cut}`).toEqual(whole);
    }
    // The chunk ends with a line of wrapped base64: held, whatever it holds. A short line is not.
    const line = `${"Q".repeat(70)}\r\n`;
    expect(cutOne(redaction, Buffer.from(`event: x\n${line}`), false).rest.toString()).toBe(`event: x\n${line}`.slice(-(redaction.maxLength - 1)));
    expect(cutOne(redaction, Buffer.from(`event: x\ndata: done\n`), false).rest.length).toBe(0);
  });
});
