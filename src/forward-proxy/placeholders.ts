/**
 * Placeholder credentials (issue 19). Many CLIs refuse to start without a token in their environment
 * (GITHUB_TOKEN, AWS_ACCESS_KEY_ID, ...). `keyward run` fills the variables an upstream names with
 * these values: worthless anywhere, recognisable here. The credential kinds already drop what the
 * agent sends in the headers they own and inject the real key (for AWS, the request is signed again
 * with the stored key); any other header that still carries a placeholder is dropped before the
 * request goes on, so no placeholder reaches an upstream in a header. One the agent puts in the query or
 * body goes as written: worthless to the upstream, and the agent's own text like the rest of the call.
 */
export const PLACEHOLDER_PREFIX = "keyward-placeholder-";

/** The value `keyward run` sets for one variable: letters, digits and dashes only, so it fits any header or key id. */
export const placeholderValue = (variable: string) => PLACEHOLDER_PREFIX + variable.toLowerCase().replace(/_/g, "-");

/** Whether a header value carries a placeholder (anywhere: `token <p>`, `AWS4-HMAC-SHA256 Credential=<p>/…`). */
export const carriesPlaceholder = (value: string) => value.toLowerCase().includes(PLACEHOLDER_PREFIX);
