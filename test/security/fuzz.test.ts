import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basic } from "../helpers/scenario.js";
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { title } from "./cases.js";
import { assertNoSecretLeaks, rawRequest, startScenario, type Scenario } from "./harness.js";

const SEED = Number(process.env.KEYWARD_FUZZ_SEED ?? 15);
const RUNS = Number(process.env.KEYWARD_FUZZ_RUNS ?? 40);

// ---- payloads ---------------------------------------------------------------------------------

const deep = (n: number, open: string, close: string) => open.repeat(n) + close.repeat(n);
const ODD_TEXT = [
  "", "{", "[", "}", "{\"a\":}", "{\"a\":1,}", "null", "true", "0", "-0", "1e999999", "-1e-999999", "123456789012345678901234567890123456789",
  "NaN", "Infinity", "\"\\ud800\"", "\"\\u0000\"", "\ufeff{}", "{\"__proto__\":{\"polluted\":1}}", "{\"constructor\":{\"prototype\":{\"x\":1}}}",
  deep(5000, "[", "]"), deep(2000, "{\"a\":", "}").replace(/}$/, "1}"), "{\"a\":" + "9".repeat(5000) + "}", "\u0000\u0001\u0002", "%zz%00%ff",
  "a=1&a=2&a=3", "a=" + "x".repeat(70_000), "=&&==&", "grant=" + "%".repeat(50), "\xff\xfe{\x00}\x00",
];
const CONTENT_TYPES = [
  "application/json", "application/json; charset=utf-16", "text/plain", "application/x-www-form-urlencoded",
  "application/x-www-form-urlencoded; charset=utf-7", "multipart/form-data", "multipart/form-data; boundary=", "application/graphql",
  "application/json, text/plain", "*/*", "", "\u00e9/\u00e9",
];
const NUMBERS = ["60", "3600", "0", "-1", "1.5", "1e309", "9007199254740993", "-9223372036854775809", "NaN", "0x10", "\"60\"", "[60]", "{}", "null"];

const text = fc.constantFrom(...ODD_TEXT);
const contentType = fc.constantFrom(...CONTENT_TYPES);
const number = fc.constantFrom(...NUMBERS);

/** A token request body: well-formed JSON with odd values, or not JSON at all. */
const tokenBody = fc.oneof(
  text,
  fc.constantFrom('{"grant":"grant-a"}', '{"grant":"grant-a","ttlSeconds":60,"methods":["GET"]}', '{"grant":"grant-a","paths":["/v1/**"],"ttlSeconds":3600}'),
  fc.tuple(fc.constantFrom("grant-a", "", "x".repeat(300), "grant-b", "\u0000"), number, fc.constantFrom("[\"GET\"]", "[]", "\"GET\"", "[\"get\"]", "[1]", deep(200, "[", "]")))
    .map(([grant, ttl, methods]) => `{"grant":${JSON.stringify(grant)},"ttlSeconds":${ttl},"methods":${methods}}`),
  fc.json({ maxDepth: 4 }),
);

/** OAuth form parameters, some well-formed, some not. */
const oauthForm = fc.oneof(
  text,
  fc
    .tuple(
      fc.constantFrom("client_credentials", TOKEN_EXCHANGE, "password", "", "client_credentials\u0000", "%00"),
      fc.constantFrom("grant:grant-a", "grant:", "grant:" + "x".repeat(500), "", "grant:grant-a grant:grant-b", "%zz"),
      fc.constantFrom("x", "a.b.c", "", "e".repeat(9000)),
      fc.constantFrom(ACCESS_TOKEN_TYPE, "", "urn:x", ACCESS_TOKEN_TYPE.toUpperCase()),
      fc.constantFrom("", "[]", "[{\"type\":\"keyward\"}]", deep(500, "[", "]"), "{\"a\":1e999}"),
    )
    .map(([grantType, scope, subject, subjectType, details]) =>
      [
        `grant_type=${encodeURIComponent(grantType)}`, `scope=${scope}`, `subject_token=${subject}`, `subject_token_type=${subjectType}`,
        `authorization_details=${encodeURIComponent(details)}`,
      ].join("&"),
    ),
);

const ODD_IDS = ["x", "%00", "..%2f..%2fv1%2fagents", "\u00e9", "1".repeat(199), "1".repeat(500), "%ff%fe", "%25", "null", "-1", "9".repeat(40), "a%20b"];
const PROXY_PATHS = [
  "/v1/items", "/v1/items?x=" + "%".repeat(10), "/v1/%", "/v1/%zz", "/v1/%c0%ae", "/v1/" + "a/".repeat(3000), "/v1/items?" + "a=1&".repeat(3000),
  "/v1/%E2%80%AE", "/v1/items?_method=DELETE", "/v1/admin", "/v1/ADMIN/x", "/v1/items/..%2f..%2fadmin", "/v1/\u00e9", "/v1/items#frag",
  "/v1/items?%ff=%fe", "/v1/items?" + "[".repeat(500) + "=1",
];
const PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];
const proxyCall = fc.record({
  method: fc.constantFrom(...PROXY_METHODS),
  path: fc.constantFrom(...PROXY_PATHS),
  contentType,
  body: text,
});

/**
 * REQ-31: every endpoint an agent can reach, fed malformed JSON, huge numbers, deep nesting and odd
 * encodings (seeded; KEYWARD_FUZZ_RUNS for more). Nothing answers 5xx, the broker keeps serving, and the
 * upstream receives only calls grant A allows.
 */
describe("security: fuzzing the agent-facing endpoints", () => {
  let s: Scenario;
  const statuses: { what: string; status: number | null }[] = [];

  beforeAll(async () => {
    s = await startScenario();
  });

  afterAll(async () => {
    await s?.close();
  });

  const clientAuth = () => basic(s.alice.clientId, s.alice.clientSecret);
  const send = async (what: string, method: string, target: string, headers: Record<string, string>, body: string) => {
    const bytes = Buffer.from(body, "latin1");
    const head = Object.entries({ ...headers, "content-length": String(bytes.length) })
      .filter(([, v]) => v !== "")
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    const res = await rawRequest(s.port, `${method} ${target} HTTP/1.1\r\nHost: keyward\r\n${head}Connection: close\r\n\r\n` + bytes.toString("latin1"), {
      record: s.responses,
      waitMs: 5000,
    });
    statuses.push({ what, status: res.status });
    return res;
  };
  const sample = <T,>(arb: fc.Arbitrary<T>, salt: number) => fc.sample(arb, { seed: SEED + salt, numRuns: RUNS });
  const encodeHeader = (v: string) => v.replace(/[^\x20-\x7e]/g, "?");

  it(title("REQ-31"), async () => {
    for (const body of sample(tokenBody, 1)) {
      for (const type of ["application/json", "text/plain", "application/json; charset=latin1"]) {
        await send(`POST /v1/tokens ${type} ${body.slice(0, 80)}`, "POST", "/v1/tokens", { authorization: clientAuth(), "content-type": type }, body);
      }
    }
    for (const form of sample(oauthForm, 2)) {
      const type = "application/x-www-form-urlencoded";
      await send(`POST /oauth2/token ${form.slice(0, 80)}`, "POST", "/oauth2/token", { authorization: clientAuth(), "content-type": type }, form);
      await send(`POST /oauth2/token (no client) ${form.slice(0, 80)}`, "POST", "/oauth2/token", { "content-type": type }, form);
      await send(`POST /oauth2/revoke ${form.slice(0, 80)}`, "POST", "/oauth2/revoke", { authorization: clientAuth(), "content-type": type }, form);
    }
    for (const [type, body] of sample(fc.tuple(contentType, text), 3)) {
      await send(`POST /oauth2/token ${type}`, "POST", "/oauth2/token", { authorization: clientAuth(), "content-type": encodeHeader(type) }, body);
    }
    for (const id of ODD_IDS) {
      await send(`GET /v1/approvals/${id}`, "GET", `/v1/approvals/${id}`, { authorization: clientAuth() }, "");
    }
    for (const c of sample(proxyCall, 4)) {
      const headers = { authorization: `Bearer ${s.tokens.api}`, "content-type": encodeHeader(c.contentType) };
      await send(`${c.method} /proxy/api${c.path.slice(0, 80)} ${c.contentType}`, c.method, `/proxy/api${c.path}`, headers, c.method === "GET" || c.method === "HEAD" ? "" : c.body);
    }

    // No 5xx (and every request got an HTTP answer: a status line, or a connection the parser closed).
    const serverErrors = statuses.filter((r) => r.status !== null && r.status >= 500);
    expect(serverErrors, JSON.stringify(serverErrors.slice(0, 5))).toEqual([]);
    expect(statuses.length).toBeGreaterThan(RUNS * 6);
    // The broker still serves.
    const after = await s.broker.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${s.tokens.api}`);
    expect(after.status).toBe(200);
    // The run reached past validation too: tokens were issued and calls forwarded.
    expect(statuses.filter((r) => r.what.startsWith("POST /v1/tokens") && r.status === 200).length).toBeGreaterThan(0);
    expect(s.api.received.length).toBeGreaterThan(1);
    // Only what grant A allows reached any upstream: GET/POST/PUT under /v1/, never /v1/admin, no override.
    expect(s.other.received).toHaveLength(0);
    expect(s.outsider.received).toHaveLength(0);
    for (const got of [...s.api.received, ...s.keyed.received]) {
      expect(["GET", "POST", "PUT"]).toContain(got.method);
      const [path, query = ""] = got.url.split("?");
      expect(path!.startsWith("/v1/")).toBe(true);
      expect(decodeURIComponent(path!).toLowerCase().startsWith("/v1/admin")).toBe(false);
      expect(query.toLowerCase()).not.toMatch(/method/);
    }
  }, 240_000);

  it("REQ-31: the fuzzing leaked no secret (SEC-01's sweep over its responses)", async () => {
    await assertNoSecretLeaks(s);
  });
});
