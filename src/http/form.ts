import { badRequest } from "./errors.js";

/**
 * Parses an application/x-www-form-urlencoded body. A parameter sent twice is refused and one sent
 * without a value counts as omitted (RFC 6749 §3.1).
 */
export function parseForm(text: string): Record<string, string> {
  const fields = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(text)) {
    if (fields.has(name)) throw badRequest("invalid_request", `parameter ${name.slice(0, 50)} is repeated`);
    fields.set(name, value);
  }
  // fromEntries defines own properties, so a field named __proto__ stays an ordinary field.
  return Object.fromEntries([...fields].filter(([, value]) => value !== ""));
}
