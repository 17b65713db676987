/**
 * The catalogue of attacks and faults the security and fault suites run, with the result each must
 * give. It is the single source of the case table in SECURITY.md: tests take their expected status
 * from here, and test/security/security-md.test.ts fails when SECURITY.md, this catalogue and the tests
 * that reference each case drift apart.
 */

export type Area = "token" | "request" | "admin" | "secrets" | "faults";

export type Case = {
  area: Area;
  attack: string;
  /** The HTTP status the attacker sees, when the case has one. */
  status?: number;
  /** What must hold: read by people in SECURITY.md. */
  expected: string;
};

const NOTHING = "the upstream receives nothing";

export const CASES = {
  // Token attacks (RFC 8725, OWASP API2:2023 broken authentication)
  "TOK-01": { area: "token", attack: "`alg: none` token", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-02": {
    area: "token",
    attack: "HS256 token signed with Keyward's public key as the HMAC secret (algorithm confusion)",
    status: 401,
    expected: `401 \`invalid_token\`; ${NOTHING}`,
  },
  "TOK-03": { area: "token", attack: "unknown `kid`", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-04": {
    area: "token",
    attack: "`kid` with path, SQL, NUL or very long values",
    status: 401,
    expected: `401 \`invalid_token\`, no 500; ${NOTHING}`,
  },
  "TOK-05": {
    area: "token",
    attack: "`jku`, `x5u`, embedded `jwk` or `x5c` header pointing at the attacker's key",
    status: 401,
    expected: `401 \`invalid_token\`; the URLs are never fetched; ${NOTHING}`,
  },
  "TOK-06": { area: "token", attack: "validly signed token with a wrong `iss`", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-07": { area: "token", attack: "validly signed token with a wrong `aud`", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-08": {
    area: "token",
    attack: "validly signed token missing a claim (`sub`, `jti`, `exp`, `iat`, `iss`, `aud`, `client_id`, `grant`, `cap`)",
    status: 401,
    expected: `401 \`invalid_token\`; ${NOTHING}`,
  },
  "TOK-09": { area: "token", attack: "expired token", status: 401, expected: `401 \`token_expired\`; ${NOTHING}` },
  "TOK-10": { area: "token", attack: "`nbf` in the future", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-11": { area: "token", attack: "`iat` far in the future", status: 401, expected: `401 \`invalid_token\`; ${NOTHING}` },
  "TOK-12": {
    area: "token",
    attack: "token signed by another ES256 key under Keyward's real `kid`",
    status: 401,
    expected: `401 \`invalid_token\`; ${NOTHING}`,
  },
  "TOK-13": {
    area: "token",
    attack: "truncated, garbled or re-encoded tokens and malformed `Bearer` headers",
    status: 401,
    expected: `401; ${NOTHING}`,
  },
  "TOK-14": { area: "token", attack: "valid token in the query string instead of the header", status: 401, expected: `401; ${NOTHING}` },
  "TOK-15": { area: "token", attack: "valid token in a cookie instead of the header", status: 401, expected: `401; ${NOTHING}` },
  "TOK-16": {
    area: "token",
    attack: "two `Authorization` headers (raw socket), valid token first or second",
    status: 401,
    expected: `401; ${NOTHING}`,
  },
  "TOK-17": { area: "token", attack: "revoked token replayed", status: 401, expected: `401 \`token_revoked\`; ${NOTHING}` },
  "TOK-18": {
    area: "token",
    attack: "token for grant A (upstream A) used on upstream B",
    status: 403,
    expected: `403 \`forbidden\`; neither upstream receives anything`,
  },
  "TOK-19": { area: "token", attack: "admin key used as an agent token on the proxy", status: 401, expected: `401; ${NOTHING}` },
  "TOK-20": {
    area: "token",
    attack: "validly signed token with the wrong `typ` or a lifetime over the 3600 s ceiling",
    status: 401,
    expected: `401 \`invalid_token\`; ${NOTHING}`,
  },
  "TOK-21": {
    area: "token",
    attack: "token exchange to escape a spent per-token budget: a child of a token whose `maxCalls` is spent, and children spending beyond their parent's budget",
    status: 429,
    expected:
      "the exchange is refused 429 `budget_exceeded` (OAuth `invalid_grant`); a child's calls count against its own per-token budget and every ancestor's; nothing beyond the parent's budget is forwarded",
  },
  "TOK-22": {
    area: "token",
    attack: "a flood of token requests with a wrong client secret (no credentials needed; each costs two scrypts, 32 MiB and tens of ms each, on the thread pool the audit spool writes with)",
    status: 503,
    expected:
      "one secret is verified at a time, so proxied calls keep being answered during the flood; past 16 verifications waiting, 503 `client_auth_busy` with `Retry-After` at once, before any credential is looked at; the rest 401 `invalid_client`",
  },
  "TOK-23": {
    area: "token",
    attack: "`client_assertion` whose unverified `iss` or `sub` holds NUL or a lone surrogate, at `/oauth2/token`, `/oauth2/revoke` and `/oauth2/introspect` (no credentials needed)",
    status: 401,
    expected: "401 `invalid_client`; never a 500",
  },
  "TOK-24": {
    area: "token",
    attack: "a token revoked by `jti`, presented again after its `exp` but within the clock-skew leeway verification allows (`KEYWARD_CLOCK_SKEW_SECONDS`)",
    status: 401,
    expected: `401; the revocation holds as long as the token verifies; ${NOTHING}`,
  },
  "TOK-25": {
    area: "token",
    attack: "token exchange (`/oauth2/token`, RFC 8693) of a parent revoked by its upstream's environment",
    status: 400,
    expected: "400 `invalid_request`, as for any revoked subject token; no child token is issued",
  },
  "TOK-26": {
    area: "token",
    attack: "a token, and a child exchanged from it (RFC 8693), used for a method or path the admin removed from their grant after they were issued",
    status: 403,
    expected: `403 \`method_not_granted\` or \`path_not_granted\`: the proxy judges every call by the grant as it stands, whatever the token claims; ${NOTHING}`,
  },
  "TOK-27": {
    area: "token",
    attack: "token exchange, after the grant was narrowed, from a token (or its child) issued under the wider grant: asking for a removed method or path, or asking for nothing",
    status: 400,
    expected: "400 `invalid_scope` (`Keyward-Error: widening_refused`) for anything the grant no longer allows; asking for nothing, a child of only what the parent and the grant as it stands both allow",
  },
  "TOK-28": {
    area: "token",
    attack:
      "a token whose grant's large budget (`perGrant.maxCalls` 1,600) was being spent on two replicas, each holding a lease of units reserved under it, called through each replica after the admin lowered the budget to 2",
    status: 429,
    expected: `429 \`budget_exceeded\` on every replica from the next call on: units reserved under the larger budget are not spent beyond the new one (they go back to the counter); ${NOTHING}`,
  },
  "TOK-29": {
    area: "token",
    attack: "token exchange from a token (or its child) whose grant no longer covers its upstream's environment",
    status: 400,
    expected: "400 `invalid_request` (`Keyward-Error: environment_not_granted`), as a token request at `/oauth2/token` gets; no child minted (it could make no call), the refusal audited",
  },
  "TOK-30": {
    area: "token",
    attack:
      "a call through one replica the moment another answered the admin's narrowing of its grant (`PATCH /v1/grants/…`, a path removed), the first replica's notifications from the database 300 ms slow",
    status: 403,
    expected: `403 \`path_not_granted\`: as for a revocation, the change is answered only once every live replica has applied it (or after a second, when one that has not is failing its own freshness checks soon after); ${NOTHING}`,
  },
  "TOK-38": {
    area: "token",
    attack:
      "a token request held for a human's approval whose narrowed paths hold bidi or invisible characters (`/v1/\\u202esgol/**`, its end reading `**/logs` right to left), posted to the approval webhook (chat-ops)",
    expected:
      "the webhook's payload shows each such character as a visible `\\uXXXX`, as the console and `keyward audit` do: the human approves what the token will allow, not what it looks like",
  },
  "TOK-37": {
    area: "token",
    attack:
      "RFC 7662 introspection of a live token whose grant no longer lets it make any call: the agent taken out of it, its upstream moved to an environment the grant does not cover, approval now required",
    expected:
      "`{ \"active\": false }`, as the proxy refuses its every call (the checks decide() makes before it reads the call, shared: standingRefusal); never `active: true` with the claims as issued",
  },

  "TOK-39": {
    area: "token",
    attack:
      "a `private_key_jwt` client assertion whose `aud` is an array naming Keyward beside another server (RFC 7523bis audience injection: an assertion the other server received, presented here)",
    status: 401,
    expected: "401 `invalid_client`: the `aud` must be Keyward's issuer identifier alone (TOK-45); no token issued",
  },

  "TOK-40": {
    area: "token",
    attack:
      "the Python client's `call` given a path (or upstream) whose dot segments climb out of the upstream's proxy (`/../../v1/agents`, `%2e%2e`, `\\`), which a front proxy resolving dot segments would deliver to another of the broker's routes with the agent's token",
    expected: "refused (`ValueError`) before anything is sent, as the TypeScript SDK's `fetch` refuses it; dot segments that stay within the upstream are sent as they are",
  },

  "TOK-41": {
    area: "token",
    attack:
      "an upstream answering with an older access token Keyward minted for it (an `oauth2-client-credentials` token endpoint that gives no `expires_in`; the token replaced after its assumed minute but still valid at the provider)",
    expected:
      "redacted from the answer: a token whose lifetime the endpoint did not say is used for a minute but remembered for redaction for a day (within the 256 replaced tokens kept), one with an `expires_in` until then",
  },

  "TOK-42": {
    area: "token",
    attack: "token exchange (RFC 8693) of an agent's live token by another client: authenticated as another agent, or naming another `client_id`",
    status: 400,
    expected: "400 `invalid_request`, no child issued; the refusal audited (`token.refused` under the token's agent, with `exchangedFrom` and the presenting client as actor) like every other refused exchange",
  },
  "TOK-43": {
    area: "token",
    attack: "an agent presents another agent's live token at the revocation endpoint (RFC 7009), as whoever stole it might to test it",
    status: 400,
    expected:
      "400 `unauthorized_client`, the token stays valid, and the attempt is audited (`revocation.refused`) under the token's agent, jti and grant, with the presenting agent as actor",
  },

  "TOK-44": {
    area: "token",
    attack:
      "the provider of an `oauth2-client-credentials` upstream revokes the access token Keyward minted for it long before its `expires_in`: the upstream answers 401 to it; or a misbehaving upstream answers 401 to every token",
    status: 401,
    expected:
      "the call that got the 401 gets it (never sent again: it may not be idempotent), the token is dropped (only if still the one in use: a newer one minted meanwhile stays) and the next call mints another; at most one such re-mint per 30 s per upstream, whatever the upstream answers; the drop is audited (`upstreamTokenDropped` on the `proxy.response` event)",
  },

  "TOK-45": {
    area: "token",
    attack:
      "a `private_key_jwt` client assertion whose `aud` is Keyward's token endpoint URL, as RFC 7523 allowed: one the agent signed for another authorization server whose metadata names Keyward's token endpoint as its own (the 2025 audience-injection attack), presented here by that server",
    status: 401,
    expected:
      "401 `invalid_client` whose description names the audience to use, Keyward's issuer identifier, as the only value (draft-ietf-oauth-rfc7523bis); the refusal audited (`token.refused`); no token issued",
  },

  "TOK-46": {
    area: "token",
    attack:
      "the installation token Keyward minted for a `github-app` upstream is revoked before GitHub's hour is out (`DELETE /installation/token`, the app suspended): GitHub answers 401 `Bad credentials` to it",
    status: 401,
    expected: "as TOK-44: the call that got the 401 gets it, not retried; the token is dropped (within the same bound) and the next call gets another installation token",
  },

  "TOK-33": {
    area: "token",
    attack:
      "a token request approved by a human for one upstream and environment (`staging-api`, staging), collected after its grant was moved to another upstream (`prod`, production)",
    status: 403,
    expected:
      "403 `approval_invalid` naming the upstream the approval was for: no token for an upstream or environment the human was not shown; collected as approved once the grant is back",
  },
  "TOK-34": {
    area: "token",
    attack:
      "an agent floods the humans' approval queue: the same held token request sent again and again, and 60 distinct ones at once (a `ttlSeconds` each), to bury another agent's request and spam the approval webhook",
    status: 429,
    expected:
      "the same request again is the same held request (same `approvalId`, no new notification); at most 10 requests per agent wait for a human, the rest 429 `too_many_pending_approvals`, audited, none held or posted; another agent's request still shows in `GET /v1/approvals?status=pending`",
  },

  // Request attacks (OWASP API5/API7/API8)
  "REQ-01": {
    area: "request",
    attack: "`..` climbing above the upstream's base path, raw or as `%2e%2e`",
    status: 403,
    expected: `403 \`invalid_path\`; ${NOTHING}`,
  },
  "REQ-02": {
    area: "request",
    attack: "`..` or `%2e%2e` from an allowed path into a denied one",
    status: 403,
    expected: `403: decided on the normalised path; ${NOTHING}`,
  },
  "REQ-03": {
    area: "request",
    attack: "encoded slash `%2f`, encoded or raw backslash `%5c` / `\\`",
    status: 403,
    expected: `403 \`invalid_path\`; ${NOTHING}`,
  },
  "REQ-04": {
    area: "request",
    attack: "`//` and `/./` in the path",
    status: 200,
    expected: "200; the upstream receives the normalised path, exactly the one decided on",
  },
  "REQ-05": { area: "request", attack: "overlong UTF-8 (`%c0%ae`) and invalid percent-encoding", status: 400, expected: `400 \`invalid_url\`; ${NOTHING}` },
  "REQ-06": {
    area: "request",
    attack: "NUL and control characters in the path, encoded (`%00`, `%0d%0a`)",
    status: 403,
    expected: `403 \`invalid_path\`; ${NOTHING}`,
  },
  "REQ-07": { area: "request", attack: "raw NUL or space in the request line (raw socket)", status: 400, expected: `400 \`bad_request\`; ${NOTHING}` },
  "REQ-08": { area: "request", attack: "segments with trailing dots (`admin.`, `admin..`)", status: 403, expected: `403 \`invalid_path\`; ${NOTHING}` },
  "REQ-09": {
    area: "request",
    attack: "double (or triple) encoding of delimiters and dot segments (`%252e%252e`, `%252f`, `%255c`, `%253b`, `%2500`)",
    status: 403,
    expected:
      "403 `invalid_path`: an upstream decoding twice would see `..` or `/`; the upstream receives nothing. Any other double-encoded character (`%2569`) is decoded once and forwarded re-encoded, and deny rules see it decoded (REQ-28)",
  },
  "REQ-10": {
    area: "request",
    attack: "method override headers (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`, `X-Original-Method`)",
    status: 200,
    expected: "the call is decided and forwarded as its real method; the upstream receives no override header",
  },
  "REQ-11": {
    area: "request",
    attack:
      "method-override query parameter under any name a framework rewrites to one: `_method`, PHP's mangled `.method`, `[method`, `%2Emethod`, ` method`, arrays (`_method[]`), NUL-cut, full-width, double-encoded, any case, `;` as separator, and header-style names (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`)",
    status: 403,
    expected: `403 \`method_override\`; ${NOTHING}`,
  },
  "REQ-12": { area: "request", attack: "lowercase method (`get`) on a raw socket", status: 400, expected: `400 \`bad_request\`; ${NOTHING}` },
  "REQ-13": {
    area: "request",
    attack: "methods outside the proxy's set (`TRACE`, `PROPFIND`, `PURGE`, `CONNECT`)",
    status: 404,
    expected: `404 \`not_found\` (CONNECT: connection closed); ${NOTHING}`,
  },
  "REQ-14": {
    area: "request",
    attack: "`Host` header naming another server",
    status: 200,
    expected: "forwarded to the configured upstream only, with the upstream's own Host; the other server receives nothing",
  },
  "REQ-15": {
    area: "request",
    attack: "`X-Forwarded-*`, `Forwarded`, `X-Original-URL`, `X-Rewrite-URL` headers",
    status: 200,
    expected: "stripped: the upstream receives none of them; the other server receives nothing",
  },
  "REQ-16": {
    area: "request",
    attack: "absolute-URI request target (`GET http://other-host/proxy/...`)",
    status: 404,
    expected: "404 `not_found`; neither the upstream nor the other host receives anything",
  },
  "REQ-17": {
    area: "request",
    attack: "upstream name tricks (`/proxy/API`, `/proxy/127.0.0.1`, `/proxy/api%2f..`, `/proxy/api@host`)",
    status: 404,
    expected: `404 \`not_found\`; ${NOTHING}`,
  },
  "REQ-18": {
    area: "request",
    attack: "agent sends its own upstream credential header (repeated) beside its token",
    status: 200,
    expected: "the upstream receives the real credential exactly once and no agent-chosen credential",
  },
  "REQ-19": {
    area: "request",
    attack: "CR, LF, bare CR, obs-fold or NUL inside header lines (raw socket)",
    status: 400,
    expected: `400 \`bad_request\`, connection closed; ${NOTHING}`,
  },
  "REQ-20": {
    area: "request",
    attack: "smuggling shapes: `Transfer-Encoding` + `Content-Length`, two `Content-Length`s, `chunked, identity`, unknown codings, space before colon",
    status: 400,
    expected: "400 `bad_request`, connection closed; the upstream never receives a complete request, nor is left waiting for one",
  },
  "REQ-21": {
    area: "request",
    attack: "a second request hidden in a body (pipelined smuggling)",
    status: 200,
    expected: "the upstream receives exactly one request whose body is the hidden bytes; the hidden request is never forwarded as a request",
  },
  "REQ-22": { area: "request", attack: "oversized headers (> 16 KiB)", status: 431, expected: `431 \`headers_too_large\`; ${NOTHING}` },
  "REQ-23": {
    area: "request",
    attack: "body over `KEYWARD_PROXY_MAX_BODY_BYTES`, declared by Content-Length",
    status: 413,
    expected: `413 \`payload_too_large\`; ${NOTHING}`,
  },
  "REQ-24": {
    area: "request",
    attack: "chunked body growing past `KEYWARD_PROXY_MAX_BODY_BYTES`",
    status: 413,
    expected: "413 `payload_too_large`; the upstream never receives a complete request, nor is left waiting for one",
  },
  "REQ-25": {
    area: "request",
    attack: "slowloris: headers sent one line at a time",
    status: 408,
    expected: `408 \`request_timeout\` within \`KEYWARD_HEADERS_TIMEOUT_MS\`; ${NOTHING}`,
  },
  "REQ-26": {
    area: "request",
    attack: "slow body: a byte at a time, Content-Length or chunked",
    status: 408,
    expected: "408 `request_timeout` within `KEYWARD_REQUEST_TIMEOUT_MS`; the upstream never receives a complete request, nor is left waiting for one",
  },
  "REQ-27": {
    area: "request",
    attack:
      "method override in a POST form body (`application/x-www-form-urlencoded`, `multipart/form-data`, no Content-Type as Rack reads it, `name*=` and mangled names) under a grant that denies or does not allow a method",
    status: 403,
    expected: `403 \`method_override\`; a form body that cannot be read within \`KEYWARD_POLICY_MAX_INSPECT_BYTES\` is 413; ${NOTHING}`,
  },
  "REQ-28": {
    area: "request",
    attack:
      "deny rule walked around by case or encoding the upstream ignores (`/v1/ADMIN/users`, `/V1/Admin/users`, `/v1/%41DMIN/users`, double-encoded `%2541DMIN`, full-width `ａｄｍｉｎ`, dotless `ı`)",
    status: 403,
    expected: `403 \`forbidden\`: deny-type rules match without regard to case, after decoding unreserved escapes and NFKC; granting paths stay exact; ${NOTHING}`,
  },
  "REQ-29": {
    area: "request",
    attack:
      "Unicode look-alikes of `.`, `/` and other delimiters in the path (`．．` U+FF0E, `‥` U+2025, `﹒` U+FE52, `／` U+FF0F, `∕` U+2215, `⁄` U+2044, `＼`, `％２ｅ`, `；`, `？`), raw or percent-encoded",
    status: 403,
    expected: `403 \`invalid_path\`; ${NOTHING}`,
  },
  "REQ-30": {
    area: "request",
    attack:
      "property-based: random methods, paths (encodings, case, dot segments, Unicode), queries and form bodies against random grants (seeded fast-check, test/unit/policy/decide-properties.test.ts)",
    expected:
      "no call a deny rule matches under any normalisation an upstream may apply (case, decoding, NFKC, method override) is allowed; no call outside the granted methods and paths is allowed",
  },
  "REQ-31": {
    area: "request",
    attack:
      "fuzzing every endpoint an agent can reach (`/v1/tokens`, `/oauth2/token`, `/oauth2/revoke`, `/v1/approvals/:id`, `/proxy/...`): malformed JSON, huge numbers, deep nesting, odd encodings and content types",
    expected: "a 4xx or an allowed answer, never a 5xx; the broker keeps serving; nothing outside the grant is forwarded",
  },
  "REQ-32": {
    area: "request",
    attack: "a path pattern of many `**` (a token narrowed to `/v1/**/**/…/**/z`) against a path of many segments",
    expected: "matched in at most (path segments × pattern segments) steps, whatever the pattern: the call is decided at once and the broker keeps answering every other call",
  },
  "REQ-33": {
    area: "request",
    attack: "Unicode space or invisible character at the end of a path segment (`/v1/admin%C2%A0/users`, U+3000, U+2002, U+200B, U+FEFF) against a path deny rule",
    status: 403,
    expected: `403 \`invalid_path\`, as for an ASCII space; ${NOTHING}`,
  },
  "REQ-34": {
    area: "request",
    attack: "a multipart form body built to make the method-override scan backtrack (a part name followed by 400,000 spaces)",
    expected: "scanned in linear time: the call is decided at once and the broker keeps answering every other call",
  },
  "REQ-35": {
    area: "request",
    attack: "method override in a compressed form body (`Content-Encoding: gzip`, `deflate`, `br`)",
    status: 403,
    expected: `a form body that cannot be read is refused, as a compressed GraphQL or JSON-RPC body is; ${NOTHING}`,
  },
  "REQ-36": {
    area: "request",
    attack:
      "override and forwarding headers spelt with underscores (`X_HTTP_METHOD_OVERRIDE`, `X_HTTP_METHOD`, `X_METHOD_OVERRIDE`, `X_ORIGINAL_URL`, `X_REWRITE_URL`, `X_FORWARDED_HOST`, `X_FORWARDED_FOR`), which CGI-style servers (Rack, WSGI, PHP) read as the hyphenated ones",
    status: 200,
    expected: "the call is decided and forwarded as its real method; the upstream receives none of these headers in either spelling",
  },
  "REQ-37": {
    area: "request",
    attack: "method override behind a second `?` (`/v1/items??_method=DELETE`): a query that starts with `?`",
    status: 403,
    expected: `403 \`method_override\`; ${NOTHING}`,
  },
  "REQ-38": {
    area: "request",
    attack:
      "query deny rule walked around by a reading the upstream applies (`;` as separator, `force[]`, `force[x]`, `%2566orce`, full-width `ｆorce`, `dry.run` or `dry+run` for `dry_run`)",
    status: 403,
    expected: `403 \`deny_rule\`; ${NOTHING}`,
  },
  "REQ-39": {
    area: "request",
    attack: "a JSON-RPC batch of 500,000 members (1 MB) refused, on a short and on a 1,000-character path",
    status: 403,
    expected: "403 in the JSON-RPC dialect, its size bounded whatever the batch, and so is its audit event (a quoted method name kept to 2,000 characters); never a 500; the broker keeps answering every other call",
  },
  "REQ-40": {
    area: "request",
    attack:
      "bidi controls and zero-width characters in a path or a JSON-RPC method name (`invoice%E2%80%AEfdp.exe`, `ad%E2%80%8Bmin`), to change what the security team reads of the call",
    expected: "the event keeps the agent's bytes; `keyward audit` and the console show them escaped (`\\u202e`), so the line reads in the order it was recorded",
  },
  "REQ-41": {
    area: "request",
    attack: "an allowed JSON-RPC batch naming 20,000 distinct methods (1 MiB), or one method name of 200,000 characters",
    status: 200,
    expected:
      "forwarded; its allow event names each operation once with its count, at most 100 names of at most 300 characters, and the rules that passed them in at most 2,000 characters: the event does not grow with the batch",
  },
  "REQ-42": {
    area: "request",
    attack:
      "space or invisible character at the start of a path segment (`/v1/%20admin/users`, `/v1/%C2%A0admin/users`, U+3000, U+200B, U+FEFF) against a path deny rule",
    status: 403,
    expected: `403 \`invalid_path\`, as for one at the end (REQ-33); ${NOTHING}`,
  },
  "REQ-43": {
    area: "request",
    attack:
      "against an upstream whose credential is the query parameter `api_key`, the agent's own value in a spelling a server reads as it (`api_key[]`, `API_KEY`, `api%5Fkey`, `api%255Fkey`, `api_key%00`, `api.key`, `api+key`)",
    status: 200,
    expected: "forwarded without the agent's parameter: the upstream reads `api_key` once, the injected secret, never the agent's value or an array",
  },
  "REQ-49": {
    area: "request",
    attack:
      "a token a human approved for a staging upstream, exchanged (RFC 8693) after an admin moved its grant to a production upstream whose environment requires approval, and the child used there",
    status: 400,
    expected:
      "400 `invalid_scope` (`Keyward-Error: widening_refused`): a child is only ever for its parent's upstream, so no approval given for one upstream carries over to another; the production upstream receives nothing",
  },
  "REQ-50": {
    area: "request",
    attack:
      "a token a human approved while its upstream was in one environment (`sandbox`), used after an admin moved the upstream into another whose tokens all need a human's approval (`vault`)",
    status: 403,
    expected:
      "403 `approval_required`: an approval counts only in the environment the human approved it for; the upstream receives nothing; the token works again once the upstream is back",
  },
  "REQ-51": {
    area: "request",
    attack:
      "a token request a human approved, collected after the security team revoked the agent's, the grant's, the upstream's, the environment's or all tokens, or those issued before a time later than the approval",
    status: 403,
    expected:
      "403 `approval_invalid` naming the revocation: an approval counts as a token issued when it was decided, so a revocation that would have revoked that token voids it; no token issued. A request approved after the revocation is collected and works",
  },
  "REQ-57": {
    area: "request",
    attack:
      "an agent has an upstream echo its guesses into a streamed answer, each at the end of a write the upstream then pauses after, and times when each echo reaches it: held back (the bytes could begin a form of the injected secret) or sent at once",
    expected:
      "what is held back between chunks does not depend on the secret: the tail after the chunk's last line feed (at most the longest form less one byte), whatever its bytes; every guess arrives alike, so the delays say nothing of the secret; line-delimited streams (SSE) are not delayed",
  },
  "REQ-58": {
    area: "request",
    attack:
      "an agent under a grant on an AWS STS or IAM upstream (`paths: [\"/**\"]`) calls `AssumeRole`, `GetSessionToken`, `GetFederationToken` or IAM `CreateAccessKey`: the answer is a new AWS credential it can use outside Keyward, beyond its grant, its token's life and any revocation, and which redaction cannot know",
    status: 403,
    expected:
      "403 `protected_operation` (presets `aws-sts` and `aws-iam`, applied to `sts.*` and `iam.*` hosts): allowed only when the grant names the operation in `allowProtected` and a human approved the token; `GetCallerIdentity` and other calls pass",
  },
  "REQ-59": {
    area: "request",
    attack:
      "GraphQL parameters hidden behind a `;` in the URL, which Rack 2 (Rails), Python < 3.9.2 and Go < 1.17 split parameters on: `GET ?query={ volumes { id } }%23;query=mutation { volumeDelete }` (one harmless document with a comment to Keyward, the last `query` to Rails), or `POST ?x=1;query=mutation { volumeDelete }` beside a harmless JSON body (Rails lets the URL's parameters win)",
    status: 403,
    expected: `403 \`uninspectable\`: a GraphQL GET with a \`;\` in its query is refused, and a POST whose URL carries a GraphQL parameter in any reading a lenient server applies; ${NOTHING}`,
  },
  "REQ-60": {
    area: "request",
    attack:
      "a GraphQL document whose comment ends, for graphql-java (Spring for GraphQL, DGS), at a line separator U+2028 or U+2029: `mutation { serviceCreate # <U+2028> volumeDelete }` is `serviceCreate` to graphql-js and the spec, and both mutations to graphql-java",
    status: 403,
    expected: `403 \`uninspectable\`: a document with U+2028 or U+2029 anywhere is refused; ${NOTHING}`,
  },
  "REQ-61": {
    area: "request",
    attack:
      "a protected AWS Query action named by `Operation`, the older name AWS documents as \"supported for backward compatibility with other AWS Query APIs\", instead of `Action`: `?Operation=DeleteDBSnapshot`, in the query string or a form body, alone or beside a harmless `Action`",
    status: 403,
    expected: `403: \`protected_operation\` for the action \`Operation\` names, \`uninspectable\` when \`Action\` names another; ${NOTHING}`,
  },
  "REQ-62": {
    area: "request",
    attack:
      "a POST with a JSON body carrying `_method` (`{\"name\": \"x\", \"_method\": \"DELETE\"}`), under a grant that denies DELETE: Laravel reads a JSON request's fields from its body and lets Symfony's `getMethod()` take `_method` from them, so the POST runs as the DELETE",
    status: 403,
    expected: `403 \`method_override\`: a JSON body (any Content-Type Laravel takes for JSON: \`/json\` or \`+json\` anywhere) is read, within the inspection limit, for a top-level member any framework reads as an override, as form bodies are (REQ-27); ${NOTHING}`,
  },
  "REQ-63": {
    area: "request",
    attack:
      "a GraphQL GET whose `extensions` parameter names `persistedQuery` twice: the stored hash of a `volumeDelete` document first, the hash of the harmless `query` sent beside it last, for a server that runs a stored document in preference to the one sent and keeps the first of two JSON keys",
    status: 403,
    expected: `403 \`uninspectable\`: duplicate JSON keys are refused in the \`extensions\` URL parameter as in a body; ${NOTHING}`,
  },
  "REQ-64": {
    area: "request",
    attack:
      "under a grant on a GitHub upstream (preset `github`) that allows DELETE on `/**`, `DELETE /repositories/<id>`: GitHub serves every `/repos/{owner}/{repo}` route under `/repositories/{id}` too (its own pagination links point there), so this deletes the repository the preset protects as `DELETE /repos/*/*`",
    status: 403,
    expected: `403 \`protected_operation\` (\`github.repoDeleteById\`): allowed only when the grant names it and a human approved the token; ${NOTHING}`,
  },
  "REQ-65": {
    area: "request",
    attack:
      "a harmless AWS action in the query string and a protected one in a body Keyward does not read as a form (no Content-Type, `text/plain`): `POST /?Action=DescribeDBInstances` with the body `Action=DeleteDBSnapshot&…`, for a server that reads such a body as a form (Rack does without a Content-Type)",
    status: 403,
    expected: `403 \`uninspectable\`: a body that is neither a form Keyward reads nor a JSON protocol call's (with \`X-Amz-Target\`) is refused, whatever the query string names; ${NOTHING}`,
  },
  "REQ-44": {
    area: "request",
    attack:
      "a forward-proxy tunnel held open after its `CONNECT` was accepted: no TLS handshake at all, a ClientHello trickled a byte at a time, or a finished handshake followed by silence",
    expected:
      "the tunnel is closed once the headers timeout (`KEYWARD_HEADERS_TIMEOUT_MS`) has passed without a handshake, or without a request after it (408 `request_timeout`, as slow headers are cut); a request in progress is answered whatever the upstream takes",
  },
  "REQ-45": {
    area: "request",
    attack:
      "inside an accepted tunnel, requests the forward proxy refuses itself: a `Host` naming another origin, an absolute-form target of another host, a WebSocket upgrade",
    status: 400,
    expected:
      "400 (`host_mismatch`, `invalid_request_target`, `upgrade_not_supported`); each refusal's event names the agent, token and grant that opened the tunnel, never `anonymous`; the upstream receives nothing",
  },
  "REQ-73": {
    area: "request",
    attack: "inside an accepted tunnel, a request the forward proxy refuses itself (another `Host`, another host's absolute-form target, an upgrade)",
    status: 400,
    expected:
      "the refusal's event says which tunnel: an origin-form target's path under the tunnel's origin (`https://host:port/…`, as a plain request's absolute-form target is kept), and `details.tunnel` whatever the target",
  },
  "REQ-74": {
    area: "request",
    attack:
      "an agent under a grant on an `aws-rds` upstream sends `ModifyDBInstance` with `BackupRetentionPeriod=0` (RDS then turns the instance's automated backups, and point-in-time recovery, off), or the parameter as `00`, `-0`, empty, in another case, twice, or in a JSON protocol body",
    status: 403,
    expected:
      "403 `protected_operation` (`aws-rds.DisableAutomatedBackups`: the grant's `allowProtected` and a human's approval); a positive retention or a `ModifyDBInstance` without the parameter goes through",
  },
  "REQ-75": {
    area: "request",
    attack:
      "under a grant with a budget of 5 deletes (`maxDestructiveCalls`), one S3 `DeleteObjects` call (`POST /{bucket}?delete`, approved for `aws-s3.DeleteObject`) names 1,000 objects; or names them so that counting `<Object>` elements misses them (a namespace prefix, a DTD's entities, a compressed, aws-chunked or UTF-16 body)",
    status: 429,
    expected:
      "each object counts as one destructive unit, as each destructive GraphQL field does: the call takes 1,000 units and is refused 429 `budget_exceeded`; a body whose objects cannot be counted is refused 403 `uninspectable` under a budget on deletes; nothing is forwarded",
  },
  "REQ-76": {
    area: "request",
    attack:
      "under a grant that forbids DELETE, a POST to a PHP (or Rack) application carries `_method=DELETE` in a form body whose Content-Type lists more than the form type (`application/x-www-form-urlencoded, text/plain`, or with a space): PHP ends the media type at `;`, `,` or a space and fills `$_POST`, which `$_REQUEST` and Symfony's getMethod() read; or in the query of a form POST whose body says otherwise",
    status: 403,
    expected:
      "403 `method_override`: the Content-Type is read as PHP and Rack read it (a list of types, read differently elsewhere, is refused when an override matters), and an override in the query is refused whatever the body says; nothing is forwarded",
  },
  "REQ-77": {
    area: "request",
    attack:
      "an operator tags a GraphQL or JSON-RPC allow rule `requiresApproval` (and `destructive`) for one dangerous operation (`deploymentRollback`, `eth_sendRawTransaction`) but lists a broader allow rule before it (`{ operation: \"mutation\" }`, `eth_*`); an agent with an unapproved token runs that operation",
    status: 403,
    expected:
      "403 `approval_required`: a tag takes something away, so every allow rule that matches an operation counts, not only the first; an approved token's call counts as destructive for budgets; the upstream receives nothing",
  },
  "REQ-78": {
    area: "request",
    attack:
      "a compromised agent's token request waits for a human; the security team revokes the agent's (or its grant's) tokens; another human, not knowing, approves the request still in the queue and the agent collects the token",
    status: 403,
    expected:
      "403 `approval_invalid` naming the revocation, to approve and to collect: a request counts as a token issued when it was made, so a revocation that would have revoked that token voids it; no token issued. A request made after the revocation is decided afresh",
  },
  "REQ-79": {
    area: "request",
    attack:
      "a token request held for a human names, besides `/**`, a path pattern holding control characters (backspaces, an ESC or C1 CSI sequence, DEL) that erase or rewrite the line where the approver reads it (the webhook's payload, `GET /v1/approvals`), so that only a harmless path shows",
    status: 400,
    expected:
      "400 `validation_failed`, nothing held or posted: a path pattern (a token's or a grant's) takes no C0 or C1 control character or DEL, as no path the proxy forwards holds one",
  },
  "REQ-80": {
    area: "request",
    attack:
      "a token request approved by a key then revoked (found stolen), or by a holder of the agent's credentials, or voided by a revocation, collected while an admin has lifted the grant's approval requirement for a while (maintenance); the requirement is then restored",
    status: 403,
    expected:
      "403 `approval_invalid` (or `self_approval`): a collection is checked as any other, whatever the grant requires now; no token is recorded as approved by a void approval, to pass once the requirement is back",
  },
  "REQ-81": {
    area: "request",
    attack:
      "under a grant that allows HEAD, a call a rule singles out by `method: \"GET\"` (`requiresApprovalFor`, `deny`, `destructive`: say downloading a backup) sent as HEAD, which most servers answer by running the GET handler (its side effects, its `Location` or signed-URL headers)",
    status: 403,
    expected:
      "a rule naming GET matches HEAD too: 403 `approval_required` (or `deny_rule`; counted destructive when allowed) without an approved token; the upstream receives nothing. A rule naming HEAD does not take GET away",
  },
  "REQ-82": {
    area: "request",
    attack:
      "a token request held for a human narrows its paths with a named placeholder that reads as a literal (`/v1/{logs}/**`: the approver reads \"the logs\", the pattern matches any one segment, `/v1/volumes/**` too)",
    expected:
      "a placeholder the agent names is recorded, shown (console, webhook, `GET /v1/approvals`) and minted as `*`, which it means: the approver reads `/v1/*/**`; the token allows exactly what was asked",
  },
  "REQ-54": {
    area: "request",
    attack:
      "byte ranges asked for in a header some server reads as `Range` (SEC-03): `Request-Range` (Apache httpd, when there is no `Range`), `x-ms-range` (Azure Storage), to read an echoed secret a few bytes per call",
    status: 200,
    expected: "neither header is forwarded, as `Range` is not: the whole body comes back, redacted",
  },
  "REQ-55": {
    area: "request",
    attack:
      "an `Accept` naming a wide charset (`application/json;charset=UTF-16BE`, UTF-16LE, UTF-32BE, UTF-32LE), which Spring's JSON converter (Jackson) writes its answer in, sent to an upstream that echoes the injected credential",
    status: 401,
    expected: "the credential is redacted in each of those encodings too: the upstream's answer comes back with the marker in place of the secret's UTF-16 or UTF-32 bytes",
  },
  "REQ-56": {
    area: "request",
    attack:
      "under a grant whose `redact` rules apply to a call (a detector, a JSON path), an `Accept` naming a charset in which ASCII is not ASCII bytes (`application/json;charset=UTF-16BE`, UTF-32LE), so that the rules, which read UTF-8, find nothing",
    status: 502,
    expected: "502 `response_unredactable`: a body the rules cannot read is never passed on; the same call answered in UTF-8 comes back redacted",
  },

  // Admin API (OWASP API1 BOLA, API3 mass assignment, API5 function-level authorization)
  "ADM-01": { area: "admin", attack: "every admin route without a key", status: 401, expected: "401 `unauthenticated`; nothing changes" },
  "ADM-02": {
    area: "admin",
    attack: "every admin route with an agent token, a garbage key, a revoked admin key, or the admin key in Basic, query or cookie",
    status: 401,
    expected: "401; nothing changes",
  },
  "ADM-03": {
    area: "admin",
    attack:
      "every admin route (the complete list, checked against the routes the app registers) with each role that lacks its permission (`auditor`, `security`), on a valid request",
    status: 403,
    expected: "403 `forbidden` (`insufficient_scope` on /oauth2/introspect); nothing changes; the roles that hold the permission get past the check (see also test/e2e/admin.test.ts)",
  },
  "ADM-04": {
    area: "admin",
    attack:
      "mass assignment: `id`, `role`, `secret`, `clientSecret`, `clientId`, `secretHash`, `keyHash`, `createdAt`, `actor`, `status`, a private `d`, … in bodies (every resource, environments, kill switch, approvals, policy simulation, agent credentials, grant rules) and unknown query filters",
    status: 400,
    expected: "400 `validation_failed`; nothing written",
  },
  "ADM-05": {
    area: "admin",
    attack: "prototype pollution (`__proto__`, `constructor.prototype`) in JSON bodies",
    status: 400,
    expected: "400; nothing written, no other object affected",
  },
  "ADM-06": {
    area: "admin",
    attack: "ids of other kinds of objects in paths and bodies (agent id as grant id, grant id as jti, …)",
    status: 404,
    expected: "404 `not_found` (or 400 `unknown_reference`); nothing changes",
  },
  "ADM-07": {
    area: "admin",
    attack: "agent asks for a token on a grant it is not in, by name or by id",
    status: 403,
    expected: "403 `forbidden`; no token issued",
  },
  "ADM-08": {
    area: "admin",
    attack:
      "SQL, template, JSON, path, HTML and unicode injection strings, and very long strings, in every string field, path parameter and query filter",
    expected: "a clean 4xx, or stored verbatim with no effect; never a 500",
  },
  "ADM-09": {
    area: "admin",
    attack: "NUL characters and unpaired UTF-16 surrogates in any body, query or path string",
    status: 400,
    expected: "400 `validation_failed`; never a 500 from the database; nothing written",
  },
  "ADM-10": {
    area: "admin",
    attack: "client credentials with control characters, NUL or non-ASCII in HTTP Basic",
    status: 401,
    expected: "401 `invalid_client`; never a 500",
  },
  "ADM-11": {
    area: "admin",
    attack: "out-of-range audit filters (year 0000, cursor beyond 64 bits)",
    status: 400,
    expected: "400 `validation_failed`; never a 500",
  },
  "ADM-12": {
    area: "admin",
    attack:
      "an upstream credential injected as a framing, hop-by-hop, forwarding or override header (`content_length`, `Transfer-Encoding`, `host`, `te`, `upgrade`, `x_forwarded_for`, `x_http_method_override`, `content_type`), in any case and with `_` for `-`, on create or update",
    status: 400,
    expected:
      "400 `validation_failed` at `/auth/header`; nothing written. An upstream stored with such a name before: its calls are refused 502 `upstream_credential_unavailable`, nothing forwarded, until an admin replaces the name",
  },
  "ADM-13": {
    area: "admin",
    attack: "an upstream whose stored secret this broker cannot use: encrypted under another master key, or not the shape its credential kind needs (a config changed beside it in the database, or a rule written since)",
    status: 502,
    expected: "502 `upstream_credential_unavailable`, nothing forwarded, no 500; the log names the upstream and what to replace, never a byte of the secret; calls go through again once the secret is set again",
  },
  "ADM-14": {
    area: "admin",
    attack: "the same name created (upstream, agent, grant) or taken by a grant rename in several requests at once",
    status: 409,
    expected: "one request wins; every other gets 409 `conflict`, never a 500; nothing half-written",
  },
  "ADM-15": {
    area: "admin",
    attack:
      "a change of an upstream's credential kind with its new secret (`PATCH`) and a new secret for the old kind (`PUT …/secret`) on the same upstream at once",
    expected:
      "the two are applied one after the other, each checked against what the other wrote: the second a 200 if its secret fits the kind it finds, else 400 `validation_failed`; the stored kind and secret always fit each other, never an `aws-sigv4` upstream holding a header secret",
  },
  "ADM-16": {
    area: "admin",
    attack:
      "one object deleted and written at once: two DELETEs of one upstream, agent or grant; a grant created on an upstream or for an agent being deleted; a grant PATCHed while it is deleted",
    expected: "each request is applied whole or refused: the loser gets 404 `not_found` or 409 `conflict`, never a 500",
  },
  "ADM-17": {
    area: "admin",
    attack: "the only two admin keys, each revoking the other at once (`DELETE /v1/admin-keys/:id`)",
    status: 409,
    expected: "one revocation is applied, the other is 409 `conflict` (the last admin key is never revoked): an admin key is always left",
  },
  "ADM-26": {
    area: "admin",
    attack:
      "someone who can edit a backup file but does not hold the master key drops a revocation (or widens a grant) and fixes the header's row count to match, appends a line after the end, or passes the file off as an unsealed backup of an earlier Keyward",
    expected:
      "`keyward restore` exits 1 and writes nothing: every backup is sealed (HMAC-SHA256 over its lines, under a key the master key encrypts into its header), an edited line or count fails the seal, a line after it is refused; an unsealed backup only with `--allow-unsealed`; `keyward backup` refuses without the master key",
  },
  "ADM-20": {
    area: "admin",
    attack:
      "an admin key approving a token request whose agent's credentials it holds: it rotated the agent's secret or set its signing keys after the request was held, or before approving, or it registered the agent and audit retention has since pruned that event",
    status: 403,
    expected:
      "403 `self_approval`, to approve and to collect the token (an approver that takes the agent's secret after approving gets no token with it); no token issued. Another human's approval still works",
  },
  "ADM-21": {
    area: "admin",
    attack: "a token request approved with an admin key that is revoked (found stolen) before the agent collects the token",
    status: 403,
    expected: "403 `approval_invalid`, audited as a refused token request: an approval is collected only while the key that decided it is live; no token issued",
  },
  "ADM-33": {
    area: "admin",
    attack:
      "a `security` key engages the kill switch with a reason holding terminal escapes (OSC 52 to set the clipboard, OSC 8 links, CSI to clear the screen, their one-byte form U+009B, U+202E), or an admin's agent description holding them, for an admin to read with `keyward kill-switch status` or `agent list` on a terminal",
    expected: "the text is stored as sent (`--json` gives it back) and shown with every control and bidi or zero-width character as a visible `\\uXXXX`: nothing reaches the terminal that it would obey",
  },
  "ADM-34": {
    area: "admin",
    attack:
      "an admin API answer (the audit log, admin keys, agents, upstreams, metrics) fetched by a browser with the admin key (the `/docs` page's \"Try it out\", a script), then read from the browser's disk cache or a cache in between by someone without the key",
    expected: "every answer of every admin route, refusals included, is `Cache-Control: no-store`: no copy is kept",
  },
  "ADM-35": {
    area: "admin",
    attack:
      "another local user reads the file `keyward audit export -o` wrote (every event: agents, paths, operations, refusals, with their hashes), or has put a file or a symlink at that path first, for the export to land in a file they can read",
    expected: "the file is created mode 0600 whatever the umask, and an existing file or symlink there is refused (exit 1, not followed, not overwritten), as `keyward backup -o` does",
  },
  "ADM-36": {
    area: "admin",
    attack:
      "a kill-switch reason (a `security` key's text) or an agent's description holding bidi or zero-width characters, shown in the console",
    expected: "shown as visible `\\uXXXX` escapes, as the console shows an agent's paths (REQ-40); the API keeps the text as written",
  },
  "ADM-37": {
    area: "admin",
    attack: "an admin names an agent, grant or admin key with a C1 control character (U+009B, a terminal's one-byte CSI; U+0085), printed as it is in the CLI's confirmation prompts",
    status: 400,
    expected: "400 `validation_failed`, as C0 controls and DEL already were",
  },
  "ADM-38": {
    area: "admin",
    attack:
      "an operator runs `keyward backup` or `keyward rotate-master-key` on the embedded default from another folder (`KEYWARD_DATA_DIR` defaults to the relative `./.keyward`) or with a typo in it, or with a `DATABASE_URL` naming another database or schema than the broker's",
    expected:
      "exit 1 with one line saying there is no Keyward database there (the data dir's absolute path, or the schema) and which setting to fix; nothing created in a data dir, no tables in a database; never a new, empty database whose backup is written as a good one, or a rotation reported done (\"re-encrypted 0 secret(s); 0 still under another key\", exit 0) after which the operator drops the old key",
  },
  "ADM-39": {
    area: "admin",
    attack:
      "anyone who learns the chat-ops receiver's address posts it a forged `approval.requested` announcement: a real `approvalId` (an agent knows its own) shown with harmless details (a staging upstream, read-only paths), for an approver to approve the dangerous request behind it",
    expected:
      "`KEYWARD_APPROVAL_WEBHOOK_AUTHORIZATION`, when set, is sent as the `Authorization` header of each announcement, as `KEYWARD_AUDIT_WEBHOOK_AUTHORIZATION` is for the audit webhook, so the receiver can refuse posts that are not Keyward's; it is never in the payload or the audit log",
  },

  // Secrets
  "SEC-01": {
    area: "secrets",
    attack:
      "after each security and fault run: look for upstream secrets, the master key and signing private keys; and for client secrets, agent tokens and admin keys",
    expected: "the former in no response, error, log line, audit row or JWKS; the latter in no log line or audit row",
  },
  "SEC-02": {
    area: "secrets",
    attack: "JWKS contents",
    status: 200,
    expected: "public EC P-256 keys only: no `d`, no symmetric keys",
  },
  "SEC-03": {
    area: "secrets",
    attack: "`Range` requests that cut the injected secret, echoed by the upstream, into pieces shorter than redaction can recognise",
    status: 200,
    expected: "`Range` and `If-Range` are not forwarded (every answer is redacted, one whole answer at a time): the whole body comes back, redacted",
  },
  "SEC-04": {
    area: "secrets",
    attack: "a credential in the query of a request the forward proxy refuses (`GET http://other.example/search?access_token=…`)",
    status: 403,
    expected: "the refusal's audit event records the URL without its query: no credential an agent puts there reaches the audit log",
  },
  "SEC-05": {
    area: "secrets",
    attack: "`keyward restore` given a file that is not a backup, or a backup with a corrupted line: the master key file, an `.env` of API keys",
    expected: "exit 1 with one line naming the line number and what is wrong with it; not a character of the file's content, no stack trace; nothing restored",
  },
  "SEC-06": {
    area: "secrets",
    attack: "a `~/.config/keyward/config.json` holding an admin key that is not valid JSON (a missing quote or comma, a trailing comma), for any CLI command",
    expected: "exit 1 naming the file as not valid JSON, with where (line and column) when known; not a character of the admin key",
  },
  "SEC-07": {
    area: "secrets",
    attack:
      "the Python client's held token printed: `repr()` or `str()` of its `Token` (a log line, a debugger, a traceback that shows locals such as Sentry's or pytest's `--showlocals`)",
    expected: "the access token's expiry and scope, never a character of the access token",
  },
  "SEC-08": {
    area: "secrets",
    attack:
      "a password in the userinfo of a target the forward proxy refuses: `GET http://user:password@host/…` (what Python's urllib sends through a proxy for such a URL), `CONNECT user:password@host:443`",
    status: 400,
    expected: "400 (`absolute_form_required`, `invalid_connect_target`); the refusal's event records the target without its userinfo: no password reaches the audit log",
  },

  "SEC-12": {
    area: "secrets",
    attack:
      "an upstream that echoes the injected secret in a body it wraps in a transfer coding besides `chunked` (`Transfer-Encoding: gzip, chunked`, or `gzip` to the end of the connection), which the agent could decode itself",
    status: 200,
    expected: "the transfer coding is taken off and the body redacted like a content coding's; one Keyward cannot decode: 502 `upstream_encoding_unsupported`. Never the compressed secret",
  },
  "SEC-13": {
    area: "secrets",
    attack:
      "an upstream that echoes a secret holding `<`, `>`, `&` or `'` in JSON written as Go's `encoding/json` and Rails write it by default (`\\u003c`, `\\u003e`, `\\u0026`), or as Symfony's and Laravel's `JsonResponse` do (`\\u003C`, `\\u0027`, `\\u0022`, `\\/`)",
    status: 401,
    expected: "the echoed secret is redacted in that spelling too: the upstream's answer comes back with the value `[redacted-by-keyward]`",
  },
  "SEC-14": {
    area: "secrets",
    attack: "an upstream that sends the injected secret as (part of) a response header's name (`X-Echo-<secret>: 1`), which reaches the agent lower-cased",
    status: 200,
    expected: "that header is dropped (a name cannot hold the redaction marker) and counted as a redaction; the other headers and the body come back",
  },
  "SEC-15": {
    area: "secrets",
    attack:
      "an upstream that sends the injected secret as the coding of its `Content-Encoding` or `Transfer-Encoding` (`Content-Encoding: x-<secret>`), which Keyward refuses as a coding it cannot decode",
    status: 502,
    expected:
      "502 `upstream_encoding_unsupported` naming a registered coding (`zstd`, `compress`) but never repeating another: not a character of the secret in the answer, the audit log or the log",
  },
  "SEC-16": {
    area: "secrets",
    attack:
      "an upstream that echoes the injected secret's bytes in hex: space-separated as S3's `SignatureDoesNotMatch` error writes the request it signed (`<CanonicalRequestBytes>`, `<StringToSignBytes>`), or run together as a hex dump; upper or lower case",
    status: 403,
    expected: "each spelling of the secret's bytes is replaced by `[redacted-by-keyward]`; the rest of the answer comes back",
  },
  "SEC-17": {
    area: "secrets",
    attack:
      "an upstream's HTML error page that echoes a secret holding `&`, `<`, `>`, `\"`, `'`, `+`, `/` or `=` as an HTML escaper writes it (Go's `html/template`, Python's `html.escape`, PHP's `htmlspecialchars`, Rails' ERB, Mustache: `&amp;`, `&#34;`, `&#x27;`, `&#039;`, `&#43;`, `&#x2F;`, `&#x3D;`), and its Basic base64 form escaped too",
    status: 403,
    expected: "each escaped spelling is replaced by `[redacted-by-keyward]`, in text and in attributes; the page around it comes back",
  },
  "SEC-18": {
    area: "secrets",
    attack:
      "an upstream that serves the keys it was called with (a request log), after two rotations of its credential within 24 h (and another change to the upstream), each version used on the replica",
    status: 200,
    expected:
      "every credential rotated away within the last 24 h is still redacted, not just the last one (up to 8 per upstream; past that, the oldest and the newest are kept)",
  },
  "SEC-19": {
    area: "secrets",
    attack:
      "an upstream that echoes data holding the secret as base64 wrapped into lines: a MIME part (76 characters, CRLF), a PEM block (64, LF), with the line break at each place in the secret's span; whole or streamed",
    status: 403,
    expected: "each secret is replaced by `[redacted-by-keyward]` across its line breaks: no block decodes to a piece of it",
  },
  "SEC-28": {
    area: "secrets",
    attack:
      "an upstream that echoes a secret holding `=`, `'`, `+`, `\"` or a backtick (a base64 key's `+` and `=`) in JSON as Gson writes it by default (`\\u003d`, `\\u0027`, lower case) or as .NET's `System.Text.Json` does (`\\u002B`, `\\u0022`, `\\u0060`, upper case, non-ASCII too)",
    status: 403,
    expected: "the echoed secret is redacted in that spelling too: the upstream's answer comes back with the value `[redacted-by-keyward]`",
  },
  "SEC-29": {
    area: "secrets",
    attack:
      "an upstream that echoes the injected secret's bytes as hex with a separator between bytes: colons as OpenSSL writes a fingerprint (`AB:CD:…`) and Python's `bytes.hex(\":\")` (`ab:cd:…`), dashes as .NET's `BitConverter.ToString` (`AB-CD-…`); upper or lower case",
    status: 403,
    expected: "each spelling of the secret's bytes is replaced by `[redacted-by-keyward]`; the rest of the answer comes back",
  },
  "SEC-30": {
    area: "secrets",
    attack:
      "an upstream that echoes data holding the secret as base64 wrapped into lines inside a JSON string, where each line break is the escape `\\n` or `\\r\\n` (a PEM certificate or a MIME part as a JSON value), with the break at each place in the secret's span; whole or streamed",
    status: 403,
    expected: "each secret is replaced by `[redacted-by-keyward]` across its escaped line breaks: the answer stays JSON, and no block decodes to a piece of it",
  },
  "SEC-31": {
    area: "secrets",
    attack:
      "an upstream that echoes the injected secret in a quoted-printable e-mail body (a mail API's raw message, a bounce): `=` written `=3D`, lines cut at 76 characters by soft line breaks (`=` and CRLF) wherever they fall in the secret's span; whole or streamed",
    status: 403,
    expected: "each secret is replaced by `[redacted-by-keyward]`, across its soft line breaks too: decoded, the body holds no piece of it",
  },
  "SEC-32": {
    area: "secrets",
    attack:
      "an upstream that echoes the secret HTML-escaped inside a JSON string (an HTML fragment or error page returned as a JSON value), by an encoder that escapes the HTML escapes' `&` again: Go's `html/template` in `encoding/json` (`\\u0026amp;`, `\\u0026#43;`), the OWASP Java Encoder in Gson",
    status: 403,
    expected: "the doubly escaped secret is replaced by `[redacted-by-keyward]`; the JSON and the HTML around it come back",
  },
  "SEC-33": {
    area: "secrets",
    attack:
      "an upstream on .NET's `System.Text.Json` that echoes the secret's base64 (the `Authorization: Basic` header it received), whose `+` that encoder writes as `\\u002B`",
    status: 403,
    expected: "the base64 form is replaced by `[redacted-by-keyward]` in that spelling too: only the characters that depend on the user name are left around it",
  },
  "SEC-26": {
    area: "secrets",
    attack:
      "an upstream's secret or an agent's client secret typed or pasted at the CLI's prompt on a terminal (`keyward upstream set-secret`, `upstream add`, `token issue`), then read off the screen, the scrollback or a recorded session",
    expected: "the terminal does not echo it (echo is off while it is read, and back on after, Ctrl-C included); the secret is stored as typed",
  },
  "SEC-27": {
    area: "secrets",
    attack:
      "the command `keyward run` starts (the agent) reads its environment, inherited from a shell that also holds the operator's `DATABASE_URL` (with its password), `KEYWARD_MASTER_KEY_PREVIOUS` or a `…_FILE` naming one",
    expected: "none of them reaches the child: every secret the broker's configuration takes, and its `_FILE`, is withheld with the agent's own credentials",
  },
  "SEC-40": {
    area: "secrets",
    attack:
      "an upstream that serves the keys it was called with (a request log), its credential rotated on one replica: read through another replica that never sent the old key, and through the first once restarted",
    status: 200,
    expected:
      "the rotated-away credential is still redacted on every replica and across restarts: it is kept in the database, encrypted under the master key, for 24 h (at most 8 per upstream), then deleted",
  },

  // Faults
  "FLT-01": {
    area: "faults",
    attack: "PostgreSQL stopped mid-run (own temporary cluster, immediate shutdown)",
    status: 503,
    expected: `proxy 503; ${NOTHING}`,
  },
  "FLT-02": {
    area: "faults",
    attack: "PostgreSQL stopped: token and admin endpoints",
    status: 503,
    expected: "503 `database_unavailable`, never 500",
  },
  "FLT-03": { area: "faults", attack: "PostgreSQL started again", status: 200, expected: "calls succeed again without a broker restart" },
  "FLT-04": {
    area: "faults",
    attack: "load across the stop and restart",
    expected: "every 2xx the client saw has its `proxy` and `proxy.response` audit rows; every forwarded call has its allow row",
  },
  "FLT-05": { area: "faults", attack: "upstream down (connection refused)", status: 502, expected: "502 `upstream_unreachable`, no detail" },
  "FLT-06": {
    area: "faults",
    attack: "upstream never answers",
    status: 504,
    expected: "504 `upstream_timeout` within `KEYWARD_UPSTREAM_TIMEOUT_MS`",
  },
  "FLT-07": {
    area: "faults",
    attack: "upstream stalls in the middle of its body, or closes before its Content-Length",
    expected:
      "the response is cut within `KEYWARD_UPSTREAM_TIMEOUT_MS` once its status has gone out; a small answer (length declared, up to 64 KiB) is read whole first, so a stall in it is a clean 504 `upstream_timeout` and a short one a clean 502; the broker keeps serving",
  },
  "FLT-08": {
    area: "faults",
    attack: "upstream resets the connection (before or during the headers)",
    status: 502,
    expected: "502 `upstream_unreachable`",
  },
  "FLT-09": { area: "faults", attack: "upstream sends oversized response headers", status: 502, expected: "502 `upstream_unreachable`" },
  "FLT-10": {
    area: "faults",
    attack: "upstream sends malformed responses (garbage status line, bad header, conflicting lengths)",
    status: 502,
    expected: "502 `upstream_unreachable`",
  },
  "FLT-11": {
    area: "faults",
    attack: "upstream streams a 256 MiB body",
    status: 200,
    expected: "streamed through with backpressure: a paused reader holds the upstream back (< 64 MiB in flight, ~10 MiB measured), memory stays bounded",
  },
  "FLT-12": {
    area: "faults",
    attack: "one upstream hanging under concurrent load",
    status: 200,
    expected: "calls to other upstreams are answered at once",
  },
  "FLT-13": {
    area: "faults",
    attack: "broker killed with SIGKILL during load, restarted on the same data",
    expected: "starts; no half-written records; every acknowledged token and revocation intact and enforced",
  },
  "FLT-14": {
    area: "faults",
    attack: "SIGTERM with a call in flight",
    expected: "the in-flight call finishes (200); new connections are refused; exit code 0",
  },
  "FLT-15": {
    area: "faults",
    attack: "embedded database: after a reboot, the stale `keyward.pid` and `postmaster.pid` name pids that unrelated processes now have",
    expected: "the broker starts on its data; the unrelated processes are not signalled; a second broker is still refused while it runs",
  },
  "FLT-16": {
    area: "faults",
    attack: "embedded database: a `KEYWARD_DATA_DIR` so long that the server's Unix socket path would pass the 107-byte `sun_path` limit",
    expected: "exit 1 at once with one line saying the path is too long and to use a shorter `KEYWARD_DATA_DIR`; nothing created in it",
  },
  "FLT-17": {
    area: "faults",
    attack: "the audit spool's disk full: a write gets part of its bytes down, then ENOSPC, and no new spool file can be made",
    expected: "that call is refused (503, nothing forwarded); once the disk has room, the next acknowledged events are whole lines in the spool, none glued to the refused one's bytes",
  },
  "FLT-18": {
    area: "faults",
    attack: "the audit spool's disk full, with a load balancer polling `/readyz`",
    status: 503,
    expected: "`/readyz` answers 503 with `auditSpool: false` while the disk refuses the spool's writes, so the balancer stops sending calls that would all be refused; ready again once the disk has room, without a call having to find out first",
  },
  "FLT-19": {
    area: "faults",
    attack: "an OAuth token endpoint that sends its status and then trickles its body a byte at a time, never finishing",
    status: 502,
    expected:
      "502 `upstream_credential_unavailable` once the upstream timeout (connect + headers) has passed for the whole token exchange; the calls waiting on that token fail with it, the broker closes without waiting for it",
  },
  "FLT-20": {
    area: "faults",
    attack:
      "a replica's notification connection goes silent without being closed (its server failed over or the path to it was cut: no reset, no error), while the rest of its connections work",
    status: 503,
    expected:
      "its proxied calls answer 503 `revocation_state_stale` once the last proof of currency is older than `KEYWARD_REVOCATION_MAX_STALENESS_MS`; within about as long again it drops the silent connection, listens anew and reloads, and serves again, a token revoked meanwhile refused",
  },
  "FLT-21": {
    area: "faults",
    attack: "`keyward restore` of a backup cut short: a copy or a `keyward backup` that stopped at a line boundary (say just after the audit events) or in the middle of a line",
    expected: "exit 1 saying the backup is incomplete, nothing restored; never a restore that succeeds without the upstreams, grants, signing keys or revocations the backup was cut before",
  },
  "FLT-22": {
    area: "faults",
    attack: "`keyward restore` with a master key other than the backup's (another `KEYWARD_MASTER_KEY`, or none, so the broker would generate one)",
    expected: "exit 1 before anything is written, saying the backup is sealed under another master key and which key to give; the database stays empty for the restore with the right key",
  },
  "FLT-23": {
    area: "faults",
    attack:
      "`keyward rotate-master-key` run while the newest audit pruning checkpoint is signed under the previous master key (a replica not yet restarted with both keys pruned, or a stopped embedded broker never ran with them), then the previous key removed",
    expected: "the rotation signs that checkpoint again under the new key before it exits 0, so `keyward audit verify` passes under the new key alone",
  },
  "FLT-24": {
    area: "faults",
    attack: "`keyward rotate-master-key` with one upstream secret that neither the new nor the previous key decrypts (ADM-13's case), first in the table",
    expected:
      "every other secret (upstreams, signing keys, forward-proxy CA keys) is re-encrypted; that upstream is named, with how to repair it, and counted as still under another key: exit 1, never a stop at the first row it cannot read",
  },
  "FLT-25": {
    area: "faults",
    attack: "two `keyward restore` into one empty database at once",
    expected: "one restores; the other waits for it and is refused as into a database that is not empty (exit 1, one line), never a unique-violation stack",
  },
  "FLT-26": {
    area: "faults",
    attack: "`keyward backup`, `restore` or `migrate` with the database down (or the embedded data dir held by a running broker)",
    expected: "exit 1 with one line naming the database (never its password) and what is wrong, `database_unavailable` with `--json`; no stack trace, no advice meant for the broker's supervisor",
  },
  "FLT-27": {
    area: "faults",
    attack: "`keyward rotate-master-key` with `KEYWARD_MASTER_KEY` and `KEYWARD_MASTER_KEY_PREVIOUS` set to the same key (both left at the old one, say)",
    expected: "exit 1 at once saying the two are the same key (never printing it), nothing written; never an exit 0 that reads as a finished rotation",
  },
  "FLT-28": {
    area: "faults",
    attack:
      "audit verification (`GET /v1/audit/verify`, `keyward audit verify`, or a replica's own check before it prunes) running while another replica prunes: the checkpoint written and the events it covers deleted between the walk's reads",
    expected:
      "the verification walks again from the new checkpoint and reports the chain whole; never a false \"event is missing\" alarm, nor a replica that then refuses to prune a whole chain as broken",
  },
  "FLT-29": {
    area: "faults",
    attack: "audit retention turned on for a log that grew for months: hundreds of thousands of events to prune in one run (600,000 measured)",
    expected:
      "pruned in chunks (20,000 events each), each in a transaction of its own behind its own signed checkpoint chained to the one before; the chain verifies after; never one transaction past Prisma's 5 s, which rolled back every hourly run so that retention never ran again",
  },
  "FLT-36": {
    area: "faults",
    attack: "`keyward restore` refused after it began (an altered audit event, a failed seal, rows missing), then a restore of another backup into the same database",
    expected:
      "the database is as the restore found it (the migrations to the backup's version run in the restore's own transaction and roll back with it), so another backup, even of an earlier schema version, restores into it",
  },
  "FLT-37": {
    area: "faults",
    attack:
      "the broker dies between claiming an approved request's collection and minting its token (the approval left `issuing`), or a claimer stalls past its lease and mints after another poll took the claim over",
    expected:
      "the agent's next poll after the claim's 30 s lease takes it over and collects the token (before: `issuing` until the approval expired, for a human to approve again); a claimer that lost its claim has its token revoked: one approval, one working token",
  },

  "FLT-30": {
    area: "faults",
    attack: "the broker stopped (SIGTERM) while calls go through the forward proxy: one inside a CONNECT tunnel, one plain `http://`, and a tunnel with nothing in flight",
    status: 200,
    expected:
      "as on the main port (FLT-14): each call in flight is answered (200, `Connection: close`) before the stop goes on to close the database; no request starts meanwhile; the idle tunnel is closed",
  },
  "FLT-46": {
    area: "faults",
    attack: "a model has `keyward mcp`'s `call_upstream` fetch an upstream answer that never ends (a log stream, a huge download)",
    status: 200,
    expected:
      "the tool answers with the first 100,000 characters and `truncated: true`, reading little more than that and cancelling the rest; never the whole body held in the MCP process's memory, nor a call that never returns",
  },
  "FLT-34": {
    area: "faults",
    attack:
      "an upstream body that does not decode as its `Content-Encoding` says (corrupt gzip, raw deflate without its zlib header, gzip followed by bytes that are no gzip member)",
    status: 502,
    expected: "502 `upstream_unreachable` when nothing was relayed yet (the response cut when it was), never a 500, nothing of the body; the broker keeps serving",
  },
  "FLT-35": {
    area: "faults",
    attack: "an upstream whose answer breaks its framing (a chunk size that is not hex) just after echoing the injected credential",
    status: 502,
    expected:
      "502 `upstream_unreachable`; the failure is logged without the bytes the parser stopped at (undici's `HTTPParserError` carries them as `data`): not a character of the secret in the log",
  },
  "FLT-42": {
    area: "faults",
    attack:
      "a call takes a unit from this replica's lease of one budget while its other budget is reserved in the database, which refuses it; meanwhile another call replaced or dropped that lease (the admin lowered the budget, or a new minute began)",
    status: 429,
    expected:
      "the call is refused with 429 `budget_exceeded` for the spent budget, never a 500; the leased unit goes back only to the lease it was reserved in, never to a newer one (a unit reserved in one minute is not spent, uncounted, in the next)",
  },
  "FLT-47": {
    area: "faults",
    attack:
      "a call allowed under a budget is then not forwarded because its allow event cannot be made durable (the audit spool's disk is full now and then)",
    status: 503,
    expected:
      "503 `audit_unavailable`, nothing forwarded, and the units it took are given back (as by any step that fails before the call is sent): to this replica's lease they came from while it is held, otherwise off the database counter in the window they were counted in; a budget of N lets N calls reach the upstream",
  },
  "FLT-48": {
    area: "faults",
    attack: "a call allowed under a budget whose upstream cannot be connected to (refused, unresolvable, or the connection timed out): nothing of it was sent",
    status: 502,
    expected:
      "502 `upstream_unreachable` (504 `upstream_timeout` for a connect timeout) and the units it took are given back: an upstream that is down does not spend the agent's budget (before: a budget of 3 was spent by 3 refused connections, then 429); a call whose connection was made keeps its units, since the upstream may have acted on it",
  },
  "FLT-49": {
    area: "faults",
    attack: "an agent sends a call allowed under a budget and leaves before the broker sends it upstream (while the upstream's OAuth credential is being fetched)",
    status: 429,
    expected:
      "nothing is sent upstream and the unit the call took is given back (its outcome audited as `request_aborted`): a budget of 3 still buys 3 calls, the fourth is 429 `budget_exceeded`",
  },
  "FLT-53": {
    area: "faults",
    attack: "the broker stopped (SIGTERM) while an agent follows a call that never ends (an event stream, a download it reads forever)",
    expected:
      "calls that end by themselves within `KEYWARD_SHUTDOWN_TIMEOUT_MS` (25 s) are answered whole; the rest are cut then, their `proxy.response` events recorded as `response_incomplete`, and the broker exits 0: never a stop that waits for the supervisor's SIGKILL, which lost those events and left the embedded database unstopped",
  },
  "FLT-54": {
    area: "faults",
    attack:
      "another local user who can write to `KEYWARD_DATA_DIR` (a shared volume, a path under /tmp, a folder made with a loose umask) plants an audit spool of forged events for the next start to adopt, or a `master.key` of their own before the first start",
    expected:
      "the broker refuses to start (and the CLI to read the key), naming the path and the fix: the audit spool's folder and the master key must be the broker's user's and writable by nobody else; nothing planted is shipped into the audit chain or used as the master key",
  },
  "FLT-55": {
    area: "faults",
    attack: "anyone who reaches the broker sends a burst of `/readyz` calls (400 at once), while its database is 100 ms away",
    status: 200,
    expected:
      "the calls that arrive together share one database check: every one answers 200, and proxied calls go on; never a check per call queued behind the pool until the last ones pass the 2 s limit, find the database \"unreachable\" and fail every proxied call closed (and the replica out of its balancer)",
  },
  "FLT-56": {
    area: "faults",
    attack: "the broker stopped (SIGTERM) just after its database came back from a restart, with 500 to 900 audit events waiting for it",
    expected:
      "the stop ships every one of them while the database answers, and removes its spool; never a last shipment that stopped after its first batch and left the rest in a spool that, on a replica's own disk, goes with the replica",
  },
  "FLT-57": {
    area: "faults",
    attack:
      "an embedded broker killed (SIGKILL, OOM, power loss) with events and token records it had acknowledged but not shipped, then `keyward backup` taken to move to another machine",
    expected:
      "the backup first ships what the crashed broker's spool holds, as a broker's start would: the backup has every acknowledged event (and token record, so a token issued just before the crash can still be revoked by jti after a restore elsewhere)",
  },
  "FLT-58": {
    area: "faults",
    attack: "a burst of `/readyz` calls (it answers anyone) at a broker whose audit spool's disk refused a write and has room again, before any call has written",
    status: 200,
    expected:
      "one probe finds the disk writable and the spool counts as writable from then on (until a write is refused again); never a 64 KiB write and fsync on the event loop for every check, which a burst turns into seconds of a broker that answers nothing",
  },
  "FLT-59": {
    area: "faults",
    attack:
      "one data dir used by brokers of two databases (a clone's relative `./.keyward` started once on the embedded default and once with a `DATABASE_URL`, or two schemas): a broker of the first is killed with events in its spool, then a broker of the second starts",
    expected:
      "each spool names its database's audit chain (`AuditChainHead.chainId`); the second broker leaves the spool where it is and warns, naming it; the next broker of the first database ships it into its own chain, which verifies",
  },
  "FLT-60": {
    area: "faults",
    attack:
      "embedded database: several brokers start together on one data dir whose `keyward.pid` was left by a broker that died (a supervisor restarting replicas at once, a doubled systemd unit)",
    expected:
      "exactly one of them takes the data dir; the others are refused with \"another Keyward is using the data dir\"; none removes the lock the winner just took, so none stops the winner's PostgreSQL as a stale server",
  },
  "FLT-61": {
    area: "faults",
    attack:
      "embedded database: the broker alone gets SIGTERM or SIGINT while it starts (first-run initdb, the server starting, migrations: seconds), as from `kill <pid>` or a supervisor giving up on a slow start",
    expected:
      "the broker stops what it started (the embedded PostgreSQL, in its own process group, above all) and releases the data dir, then exits 1 saying it was stopped during start-up; no server of that data dir is left running, and the next start serves",
  },
  "FLT-62": {
    area: "faults",
    attack:
      "a first start without `KEYWARD_ADMIN_KEY` fails after it has generated the admin key and stored its hash (a part of the data dir it cannot write, a SIGTERM while it starts), then starts again",
    expected:
      "the generated key is shown as soon as its hash is stored, even when the start then fails: the operator is never left with a database whose only admin key nobody saw (no later start shows or makes one)",
  },
  "ADM-48": {
    area: "admin",
    attack:
      "an admin write re-sends an upstream's secret in service unchanged (an idempotent deploy script's PUT, a `PATCH` of `auth` with the same secret), again and again, then the secret is rotated a few times",
    expected:
      "a write that keeps the secret in service retires nothing (no copy of it among the 8 replaced credentials kept per upstream); every credential actually replaced in the last 24 h stays redacted, on every replica",
  },
} as const satisfies Record<string, Case>;

export type CaseId = keyof typeof CASES;

export const caseOf = (id: CaseId): Case => CASES[id];

/** A test title that names the case: `TOK-01 alg: none token → 401 ...`. */
export const title = (id: CaseId) => `${id} ${CASES[id].attack.replace(/`/g, "")}`;

/** The expected status of a case; throws when the case has none (a test bug). */
export function statusOf(id: CaseId): number {
  const status = (CASES[id] as Case).status;
  if (status === undefined) throw new Error(`${id} has no status`);
  return status;
}

const AREA_TITLES: Record<Area, string> = {
  token: "Token attacks",
  request: "Request attacks",
  admin: "Admin API",
  secrets: "Secrets",
  faults: "Faults",
};

/** The case table as it appears in SECURITY.md. */
export function renderCaseTable(): string {
  const lines: string[] = [];
  for (const area of Object.keys(AREA_TITLES) as Area[]) {
    lines.push(`### ${AREA_TITLES[area]}`, "", "| id | attack or fault | expected result |", "| --- | --- | --- |");
    for (const [id, c] of Object.entries(CASES) as [CaseId, Case][]) {
      if (c.area === area) lines.push(`| ${id} | ${c.attack.replace(/\|/g, "\\|")} | ${c.expected.replace(/\|/g, "\\|")} |`);
    }
    lines.push("");
  }
  return lines.join("\n").trimEnd();
}
