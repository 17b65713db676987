import { globMatches } from "./glob.js";

/** A query string's parameters by lower-cased, decoded name, with every decoded value (`?a` has value ""). */
export type QueryParams = ReadonlyMap<string, readonly string[]>;

/**
 * Parses a raw query string as servers do (form decoding: `+` is a space, percent-escapes decoded).
 * Names are lower-cased: rules matching on them must not be escaped by `?Delete` or `?%64elete`.
 */
export function parseQuery(rawQuery: string): QueryParams {
  const params = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(rawQuery)) {
    const key = name.toLowerCase();
    const values = params.get(key);
    if (values) values.push(value);
    else params.set(key, [value]);
  }
  return params;
}

/**
 * Whether every parameter a rule names is present with a value its glob matches: `"*"` matches any
 * value, including none (`?delete`); otherwise `*` stands for any run of characters. Names match in any case.
 */
export function queryMatches(rule: Readonly<Record<string, string>>, query: QueryParams): boolean {
  return Object.entries(rule).every(([name, glob]) => {
    const values = query.get(name.toLowerCase());
    return values !== undefined && values.some((value) => glob === "*" || globMatches(glob, value));
  });
}
