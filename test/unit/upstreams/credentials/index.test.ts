import { describe, expect, it } from "vitest";
import {
  authConfigSchema,
  compileInjector,
  headersOwnedBy,
  secretSchema,
  type AuthConfig,
  type OutgoingRequest,
} from "../../../../src/upstreams/credentials/index.js";

const parse = (input: unknown) => authConfigSchema.safeParse(input);

function config(input: unknown): AuthConfig {
  const result = parse(input);
  if (!result.success) throw new Error(JSON.stringify(result.error.issues));
  return result.data;
}

describe("authConfigSchema: header kind", () => {
  const accepted: [string, unknown, AuthConfig][] = [
    ["defaults", { type: "header" }, { type: "header", header: "Authorization", template: "Bearer {secret}" }],
    ["custom header, bare secret", { type: "header", header: "X-Api-Key", template: "{secret}" }, { type: "header", header: "X-Api-Key", template: "{secret}" }],
    ["token scheme", { type: "header", template: "token {secret}" }, { type: "header", header: "Authorization", template: "token {secret}" }],
    ["secret in the middle", { type: "header", header: "x-key", template: "k={secret};v=1" }, { type: "header", header: "x-key", template: "k={secret};v=1" }],
    ["header with every token character", { type: "header", header: "A!#$%&'*+-.^_`|~9", template: "{secret}" }, { type: "header", header: "A!#$%&'*+-.^_`|~9", template: "{secret}" }],
    ["cookie may carry a credential", { type: "header", header: "Cookie", template: "session={secret}" }, { type: "header", header: "Cookie", template: "session={secret}" }],
  ];
  it.each(accepted)("accepts %s", (_name, input, expected) => {
    expect(parse(input)).toEqual({ success: true, data: expected });
  });

  const refused: [string, unknown][] = [
    ["template without {secret}", { type: "header", template: "Bearer" }],
    ["template with {secret} twice", { type: "header", template: "{secret}:{secret}" }],
    ["template with {secret} three times", { type: "header", template: "{secret}{secret}{secret}" }],
    ["template with a misspelt placeholder", { type: "header", template: "Bearer {Secret}" }],
    ["template with a CRLF", { type: "header", template: "Bearer {secret}\r\nX-Evil: 1" }],
    ["template with a LF", { type: "header", template: "Bearer {secret}\nX: 1" }],
    ["template with a NUL", { type: "header", template: "Bearer {secret}\u0000" }],
    ["template over 200 chars", { type: "header", template: "{secret}" + "x".repeat(193) }],
    ["empty header name", { type: "header", header: "" }],
    ["header name with a space", { type: "header", header: "X Api" }],
    ["header name with a colon", { type: "header", header: "X-Api:" }],
    ["header name with CRLF", { type: "header", header: "X-Api\r\nX-Evil" }],
    ["header name over 100 chars", { type: "header", header: "x".repeat(101) }],
    ["header name non-ASCII", { type: "header", header: "X-Ápi" }],
    ["Host", { type: "header", header: "Host" }],
    ["host", { type: "header", header: "host" }],
    ["HOST", { type: "header", header: "HOST" }],
    ["Content-Length", { type: "header", header: "Content-Length" }],
    ["Transfer-Encoding", { type: "header", header: "Transfer-Encoding" }],
    ["Connection", { type: "header", header: "Connection" }],
    ["Keep-Alive", { type: "header", header: "Keep-Alive" }],
    ["Upgrade", { type: "header", header: "Upgrade" }],
    ["TE", { type: "header", header: "TE" }],
    ["Trailer", { type: "header", header: "Trailer" }],
    ["Proxy-Authorization", { type: "header", header: "Proxy-Authorization" }],
    ["Proxy-Authenticate", { type: "header", header: "Proxy-Authenticate" }],
    ["Expect", { type: "header", header: "Expect" }],
    ["unknown field (strict)", { type: "header", header: "X-Key", extra: 1 }],
    ["a query field on the header kind", { type: "header", param: "key" }],
    ["template not a string", { type: "header", template: 5 }],
  ];
  it.each(refused)("refuses %s", (_name, input) => {
    expect(parse(input).success).toBe(false);
  });

  it("explains a reserved header", () => {
    const result = parse({ type: "header", header: "Host" });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toContain("this header cannot carry a credential");
  });

  it("explains a bad template", () => {
    const result = parse({ type: "header", template: "{secret}{secret}" });
    expect(result.error?.issues.map((i) => i.message)).toContain("must contain {secret} exactly once");
  });
});

describe("authConfigSchema: query kind", () => {
  const accepted = ["key", "api_key", "API-KEY", "access.token", "a", "x".repeat(100), "_", "0"];
  it.each(accepted)("accepts param %j", (param) => {
    expect(parse({ type: "query", param })).toEqual({ success: true, data: { type: "query", param } });
  });

  const refused: [string, unknown][] = [
    ["no param", { type: "query" }],
    ["empty param", { type: "query", param: "" }],
    ["param over 100 chars", { type: "query", param: "x".repeat(101) }],
    ["param with =", { type: "query", param: "a=b" }],
    ["param with &", { type: "query", param: "a&b" }],
    ["param with a space", { type: "query", param: "a b" }],
    ["param with %", { type: "query", param: "a%20" }],
    ["param with brackets", { type: "query", param: "key[]" }],
    ["param with #", { type: "query", param: "a#" }],
    ["param with ?", { type: "query", param: "?a" }],
    ["param with +", { type: "query", param: "a+b" }],
    ["param with newline", { type: "query", param: "a\nb" }],
    ["param non-ASCII", { type: "query", param: "clé" }],
    ["param not a string", { type: "query", param: 1 }],
    ["header fields on the query kind", { type: "query", param: "key", header: "X" }],
    ["template on the query kind", { type: "query", param: "key", template: "{secret}" }],
  ];
  it.each(refused)("refuses %s", (_name, input) => {
    expect(parse(input).success).toBe(false);
  });
});

describe("authConfigSchema: other kinds", () => {
  it.each([{}, { type: "basic" }, { type: "HEADER" }, null, "header", { type: "query", param: "k", type2: 1 }])("refuses %j", (input) => {
    expect(parse(input).success).toBe(false);
  });
});

describe("secretSchema", () => {
  it.each(["s", "sk-live-0123", "a b", "x".repeat(16_384), "ünïcødé"])("accepts %j", (secret) => {
    expect(secretSchema.safeParse(secret).success).toBe(true);
  });
  it.each(["", "x".repeat(16_385), "a\r\nX-Evil: 1", "a\nb", "a\u0000", "a\tb", "a\u007f"])("refuses %j", (secret) => {
    expect(secretSchema.safeParse(secret).success).toBe(false);
  });
});

describe("headersOwnedBy", () => {
  it.each<[AuthConfig, string[]]>([
    [{ type: "header", header: "Authorization", template: "Bearer {secret}" }, ["authorization"]],
    [{ type: "header", header: "X-Api-Key", template: "{secret}" }, ["x-api-key"]],
    [{ type: "query", param: "key" }, []],
  ])("%j owns %j", (auth, owned) => {
    expect(headersOwnedBy(auth)).toEqual(owned);
  });
});

const outgoing = (headers: Record<string, string> = {}, rawQuery = ""): OutgoingRequest => ({ headers: { ...headers }, rawQuery });

describe("compileInjector: header kind", () => {
  const cases: [string, AuthConfig, string, Record<string, string>, Record<string, string>][] = [
    ["default bearer", config({ type: "header" }), "sk-1", {}, { authorization: "Bearer sk-1" }],
    ["custom header, lower-cased name", config({ type: "header", header: "X-Api-Key", template: "{secret}" }), "sk-1", {}, { "x-api-key": "sk-1" }],
    ["template around the secret", config({ type: "header", header: "X-Key", template: "k={secret};v=1" }), "sk-1", {}, { "x-key": "k=sk-1;v=1" }],
    // replacement patterns in the secret are inserted literally, never interpreted
    ["secret with $&", config({ type: "header" }), "a$&b", {}, { authorization: "Bearer a$&b" }],
    ["secret with $'", config({ type: "header" }), "a$'b$`c$$d", {}, { authorization: "Bearer a$'b$`c$$d" }],
    ["secret containing {secret}", config({ type: "header" }), "{secret}", {}, { authorization: "Bearer {secret}" }],
    // an existing value for the header (whatever got there) is replaced, other headers kept
    ["overwrites an existing value", config({ type: "header" }), "sk-1", { authorization: "Bearer agent", accept: "a" }, { authorization: "Bearer sk-1", accept: "a" }],
  ];
  it.each(cases)("%s", (_name, auth, secret, before, after) => {
    const request = outgoing(before, "x=1");
    compileInjector(auth, secret)(request);
    expect(request).toEqual({ headers: after, rawQuery: "x=1" });
  });

  it("the same injector can be applied to many requests", () => {
    const inject = compileInjector(config({ type: "header", header: "X-Key", template: "{secret}" }), "s");
    const a = outgoing();
    const b = outgoing({ other: "1" });
    inject(a);
    inject(b);
    expect(a.headers).toEqual({ "x-key": "s" });
    expect(b.headers).toEqual({ other: "1", "x-key": "s" });
  });
});

describe("compileInjector: query kind", () => {
  const auth = config({ type: "query", param: "api_key" });
  // [raw query before, secret, raw query after]
  const cases: [string, string, string][] = [
    ["", "sk-1", "api_key=sk-1"],
    ["x=1", "sk-1", "x=1&api_key=sk-1"],
    ["x=1&y=2", "sk-1", "x=1&y=2&api_key=sk-1"],
    // the agent's own value for the parameter is dropped, however often or however spelt
    ["api_key=agent", "sk-1", "api_key=sk-1"],
    ["api_key=a&x=1&api_key=b", "sk-1", "x=1&api_key=sk-1"],
    ["api_key", "sk-1", "api_key=sk-1"],
    ["api_key=", "sk-1", "api_key=sk-1"],
    ["api%5Fkey=agent&x=1", "sk-1", "x=1&api_key=sk-1"],
    ["%61pi_key=agent", "sk-1", "api_key=sk-1"],
    // similar names are not the parameter
    ["api_key2=a&Api_Key=b", "sk-1", "api_key2=a&Api_Key=b&api_key=sk-1"],
    // the secret is encoded as a value, never able to add parameters of its own
    ["", "a&b=c", "api_key=a%26b%3Dc"],
    ["", "a b+c", "api_key=a+b%2Bc"],
    ["", "a#b?c", "api_key=a%23b%3Fc"],
    ["", "ünï", "api_key=%C3%BCn%C3%AF"],
  ];
  it.each(cases)("%j with secret %j → %j", (before, secret, after) => {
    const request = outgoing({ accept: "a" }, before);
    compileInjector(auth, secret)(request);
    expect(request).toEqual({ headers: { accept: "a" }, rawQuery: after });
    // and the forwarded query carries exactly one value for the parameter: ours
    expect(new URLSearchParams(request.rawQuery).getAll("api_key")).toEqual([secret]);
  });

  it("does not touch headers", () => {
    const request = outgoing({ api_key: "agent", authorization: "x" }, "");
    compileInjector(auth, "sk-1")(request);
    expect(request.headers).toEqual({ api_key: "agent", authorization: "x" });
  });
});
