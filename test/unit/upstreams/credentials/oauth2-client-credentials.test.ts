import { describe, expect, it } from "vitest";
import { tokenRequestParts, tokenResponseSchema } from "../../../../src/upstreams/credentials/oauth2-client-credentials.js";

describe("tokenRequestParts", () => {
  it("client_secret_basic: form-urlencoded id and secret in HTTP Basic, scopes space-separated", () => {
    const parts = tokenRequestParts({ clientId: "app 1", scopes: ["read:items", "https://graph.microsoft.com/.default"], clientAuth: "client_secret_basic" }, "s3cr&t:+");
    expect(parts.body).toBe("grant_type=client_credentials&scope=read%3Aitems+https%3A%2F%2Fgraph.microsoft.com%2F.default");
    expect(parts.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(Buffer.from(parts.headers.authorization!.replace(/^Basic /, ""), "base64").toString()).toBe("app+1:s3cr%26t%3A%2B");
  });

  it("client_secret_post: id and secret in the form, no Authorization", () => {
    const parts = tokenRequestParts({ clientId: "app", clientAuth: "client_secret_post" }, "s&1");
    expect(parts.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(parts.body))).toEqual({ grant_type: "client_credentials", client_id: "app", client_secret: "s&1" });
  });

  it("no scope parameter without scopes", () => {
    expect(tokenRequestParts({ clientId: "a", scopes: [], clientAuth: "client_secret_basic" }, "s").body).toBe("grant_type=client_credentials");
  });
});

describe("tokenResponseSchema", () => {
  it.each([
    [{ access_token: "at-1", token_type: "Bearer", expires_in: 3600 }, 3600],
    [{ access_token: "at-1", token_type: "bearer", expires_in: "3599", scope: "x", ext_expires_in: 1 }, 3599],
    [{ access_token: "eyJ.a-b_c~+/=", token_type: "BEARER" }, undefined],
  ])("accepts %j", (answer, expiresIn) => {
    const parsed = tokenResponseSchema.safeParse(answer);
    expect(parsed.success).toBe(true);
    expect(parsed.data?.expires_in).toBe(expiresIn);
  });

  it.each([
    ["no access_token", { token_type: "Bearer", expires_in: 60 }],
    ["empty access_token", { access_token: "", token_type: "Bearer" }],
    ["access_token with a space", { access_token: "a b", token_type: "Bearer" }],
    ["access_token with a line break", { access_token: "a\r\nX-Evil: 1", token_type: "Bearer" }],
    ["access_token not a string", { access_token: 5, token_type: "Bearer" }],
    ["no token_type", { access_token: "a" }],
    ["MAC token", { access_token: "a", token_type: "mac" }],
    ["DPoP token", { access_token: "a", token_type: "DPoP" }],
    ["expires_in 0", { access_token: "a", token_type: "Bearer", expires_in: 0 }],
    ["negative expires_in", { access_token: "a", token_type: "Bearer", expires_in: -1 }],
    ["fractional expires_in", { access_token: "a", token_type: "Bearer", expires_in: 1.5 }],
    ["expires_in not a number", { access_token: "a", token_type: "Bearer", expires_in: "soon" }],
    ["an error response", { error: "invalid_client" }],
    ["an array", [{ access_token: "a", token_type: "Bearer" }]],
  ])("refuses %s", (_name, answer) => {
    expect(tokenResponseSchema.safeParse(answer).success).toBe(false);
  });
});
