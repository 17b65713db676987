import { describe, expect, it } from "vitest";
import { basicKind } from "../../../../src/upstreams/credentials/basic.js";
import { anyGrant, context, outgoing } from "./request.js";

const credential = (username: string, password: string) =>
  basicKind.compile(basicKind.authSchema.parse({ type: "basic", username }), password, context());

describe("basic kind", () => {
  it.each([
    ["ada", "s3cret", "Basic YWRhOnMzY3JldA=="],
    // RFC 7617: the password may contain colons; only the user-id may not
    ["ada@example.com", "a:b:c", "Basic " + Buffer.from("ada@example.com:a:b:c").toString("base64")],
    ["josé", "pässword", "Basic " + Buffer.from("josé:pässword", "utf8").toString("base64")],
  ])("%s / %s → %s", async (username, password, header) => {
    const request = outgoing({ headers: { authorization: "Bearer agent-token", accept: "a" } });
    await credential(username, password).prepare(request, anyGrant);
    expect(request.headers).toEqual({ authorization: header, accept: "a" });
  });

  it("owns Authorization only", () => {
    const basic = credential("u", "p");
    expect(basic.ownsHeader("authorization")).toBe(true);
    expect(basic.ownsHeader("x-api-key")).toBe(false);
  });
});

describe("basic kind: secrets for response redaction", () => {
  it("the password and the encoded pair, the same array every time", () => {
    const basic = credential("ada", "s3cret-password");
    expect(basic.injectedSecrets()).toEqual(["s3cret-password", Buffer.from("ada:s3cret-password").toString("base64")]);
    expect(basic.injectedSecrets()).toBe(basic.injectedSecrets());
  });
});
