import { describe, expect, it } from "vitest";
import { headerKind } from "../../../../src/upstreams/credentials/header.js";
import { anyGrant, context, outgoing } from "./request.js";

const compile = (auth: unknown, secret: string) => headerKind.compile(headerKind.authSchema.parse(auth), secret, context());

describe("header kind", () => {
  const cases: [string, unknown, string, Record<string, string>, Record<string, string>][] = [
    ["default bearer", { type: "header" }, "sk-1", {}, { authorization: "Bearer sk-1" }],
    ["custom header, lower-cased name", { type: "header", header: "X-Api-Key", template: "{secret}" }, "sk-1", {}, { "x-api-key": "sk-1" }],
    ["template around the secret", { type: "header", header: "X-Key", template: "k={secret};v=1" }, "sk-1", {}, { "x-key": "k=sk-1;v=1" }],
    // replacement patterns in the secret are inserted literally, never interpreted
    ["secret with $&", { type: "header" }, "a$&b", {}, { authorization: "Bearer a$&b" }],
    ["secret with $'", { type: "header" }, "a$'b$`c$$d", {}, { authorization: "Bearer a$'b$`c$$d" }],
    ["secret containing {secret}", { type: "header" }, "{secret}", {}, { authorization: "Bearer {secret}" }],
    // an existing value for the header (whatever got there) is replaced, other headers kept
    ["overwrites an existing value", { type: "header" }, "sk-1", { authorization: "Bearer agent", accept: "a" }, { authorization: "Bearer sk-1", accept: "a" }],
  ];
  it.each(cases)("%s", async (_name, auth, secret, before, after) => {
    const request = outgoing({ url: "https://api.example.test/v1/x?x=1", headers: before });
    await compile(auth, secret).prepare(request, anyGrant);
    expect(request.headers).toEqual(after);
    expect(request.url.href).toBe("https://api.example.test/v1/x?x=1");
  });

  it("the same credential prepares many requests", async () => {
    const credential = compile({ type: "header", header: "X-Key", template: "{secret}" }, "s");
    const a = outgoing();
    const b = outgoing({ headers: { other: "1" } });
    await credential.prepare(a, anyGrant);
    await credential.prepare(b, anyGrant);
    expect(a.headers).toEqual({ "x-key": "s" });
    expect(b.headers).toEqual({ other: "1", "x-key": "s" });
  });

  it.each([
    [{ type: "header", header: "Authorization", template: "Bearer {secret}" }, "authorization", true],
    [{ type: "header", header: "X-Api-Key", template: "{secret}" }, "x-api-key", true],
    [{ type: "header", header: "X-Api-Key", template: "{secret}" }, "authorization", false],
    // asked in the hyphenated spelling a CGI-style server merges `api_key` with
    [{ type: "header", header: "Api_Key", template: "{secret}" }, "api-key", true],
  ])("%j owns %s: %s", (auth, header, owned) => {
    expect(compile(auth, "s").ownsHeader(header)).toBe(owned);
  });

  it("streams the body", () => {
    expect(compile({ type: "header" }, "s").buffersBody).toBe(false);
  });
});
