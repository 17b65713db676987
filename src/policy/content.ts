/**
 * Reading a call's body and headers for inspection. Anything two parsers could read differently is
 * refused rather than guessed: Keyward forwards the exact bytes it decided on, so the upstream must see
 * the same call Keyward saw.
 */

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** What an inspector gets of a call. */
export type CallContent = {
  method: string;
  /** The query string as forwarded, still encoded, without the "?" (src/proxy/target.ts queryAsSent). */
  query: string;
  headers: Headers;
  /** The whole body as received, or undefined when it was not read. */
  body: Uint8Array | undefined;
};

export type Read<T> = { ok: true; value: T } | { ok: false; reason: string };
export const refuse = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** A header that must appear at most once. */
export function singleHeader(headers: Headers, name: string): Read<string | undefined> {
  const value = headers[name];
  return Array.isArray(value) ? refuse(`repeated ${name} header`) : { ok: true, value };
}

/** The media type, lower-case, without parameters; a charset other than UTF-8 is refused. */
export function mediaType(headers: Headers): Read<string | undefined> {
  const header = singleHeader(headers, "content-type");
  if (!header.ok || header.value === undefined) return header;
  const [type, ...params] = header.value.split(";").map((p) => p.trim().toLowerCase());
  for (const param of params) {
    const [name, value] = param.split("=").map((p) => p.trim().replace(/^"(.*)"$/, "$1"));
    if (name === "charset" && value !== "utf-8" && value !== "utf8") return refuse(`unsupported charset ${value}`);
  }
  return { ok: true, value: type };
}

/** A compressed body is opaque to inspection. */
export function uncompressed(headers: Headers): Read<true> {
  const encoding = singleHeader(headers, "content-encoding");
  if (!encoding.ok) return encoding;
  const value = encoding.value?.trim().toLowerCase();
  return value === undefined || value === "" || value === "identity" ? { ok: true, value: true } : refuse("compressed body cannot be inspected");
}

/** Strict UTF-8 (no replacement characters, a byte-order mark kept and so refused by JSON). */
export function utf8Text(body: Uint8Array): Read<string> {
  try {
    return { ok: true, value: new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body) };
  } catch {
    return refuse("body is not valid UTF-8");
  }
}

/** JSON as JSON.parse reads it, refusing duplicate keys (parsers disagree on which one wins). */
export function strictJson(body: Uint8Array): Read<unknown> {
  const text = utf8Text(body);
  return text.ok ? strictJsonText(text.value, "body") : text;
}

/** strictJson for JSON already decoded to text (a URL parameter); `what` names it in the refusal. */
export function strictJsonText(text: string, what: string): Read<unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse(`${what} is not valid JSON`);
  }
  const duplicate = duplicateKey(text);
  return duplicate === null ? { ok: true, value } : refuse(`duplicate JSON key ${JSON.stringify(duplicate.slice(0, 100))}`);
}

/** Scans JSON text already accepted by JSON.parse for an object with a repeated (decoded) key. */
function duplicateKey(text: string): string | null {
  const scopes: (Set<string> | null)[] = []; // a Set of keys per open object, null per open array
  let expectingKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = scopes[scopes.length - 1];
      if (keys && expectingKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectingKey = false;
      }
      i = end;
    } else if (ch === "{") {
      scopes.push(new Set());
      expectingKey = true;
    } else if (ch === "[") {
      scopes.push(null);
    } else if (ch === "}" || ch === "]") {
      scopes.pop();
    } else if (ch === ",") {
      expectingKey = scopes[scopes.length - 1] instanceof Set;
    }
  }
  return null;
}

/** A parameter that must appear at most once in URL-encoded parameters. */
export function singleParam(params: URLSearchParams, name: string): Read<string | undefined> {
  const values = params.getAll(name);
  return values.length > 1 ? refuse(`repeated ${name} parameter`) : { ok: true, value: values[0] };
}

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
