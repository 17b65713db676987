import { describe, expect, it } from "vitest";
import { formDecodeBasic, presentedClient, splitClientAuth, type ClientAuthFields } from "../../../src/agents/client-auth.js";
import { CLIENT_ASSERTION_TYPE } from "../../../src/agents/client-keys.js";
import { KeywardError } from "../../../src/http/errors.js";

const basic = { user: "kwc_a", password: "kws_secret" };
const assertionFields = { client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: "a.b.c" } as const;

describe("splitClientAuth", () => {
  it("separates the client-authentication fields from the request's own", () => {
    expect(splitClientAuth({ grant_type: "client_credentials", client_id: "x", client_secret: "y", scope: "grant:g" })).toEqual({
      auth: { client_id: "x", client_secret: "y" },
      params: { grant_type: "client_credentials", scope: "grant:g" },
    });
  });
});

describe("presentedClient: exactly one method (RFC 6749 §2.3)", () => {
  const accepted: [string, typeof basic | undefined, ClientAuthFields, ReturnType<typeof presentedClient>][] = [
    ["HTTP Basic", basic, {}, { method: "client_secret_basic", clientId: "kwc_a", clientSecret: "kws_secret" }],
    ["HTTP Basic with the same client_id in the body", basic, { client_id: "kwc_a" }, { method: "client_secret_basic", clientId: "kwc_a", clientSecret: "kws_secret" }],
    ["client_secret_post", undefined, { client_id: "kwc_a", client_secret: "s" }, { method: "client_secret_post", clientId: "kwc_a", clientSecret: "s" }],
    ["private_key_jwt", undefined, assertionFields, { method: "private_key_jwt", clientId: undefined, assertion: "a.b.c" }],
    ["private_key_jwt naming the client", undefined, { ...assertionFields, client_id: "kwc_a" }, { method: "private_key_jwt", clientId: "kwc_a", assertion: "a.b.c" }],
    ["only a client_id", undefined, { client_id: "kwc_a" }, { method: "none", clientId: "kwc_a" }],
    ["nothing", undefined, {}, { method: "none", clientId: undefined }],
  ];
  it.each(accepted)("%s", (_name, header, fields, expected) => {
    expect(presentedClient(header, fields)).toEqual(expected);
  });

  const refused: [string, typeof basic | undefined, ClientAuthFields, string][] = [
    ["Basic and client_secret", basic, { client_id: "kwc_a", client_secret: "s" }, "more than one client authentication method"],
    ["Basic and an assertion", basic, assertionFields, "more than one client authentication method"],
    ["client_secret and an assertion", undefined, { client_id: "x", client_secret: "s", ...assertionFields }, "more than one client authentication method"],
    ["Basic naming another client_id", basic, { client_id: "kwc_b" }, "client_id does not match the Authorization header"],
    ["client_secret without client_id", undefined, { client_secret: "s" }, "client_secret needs client_id"],
    ["an assertion without its type", undefined, { client_assertion: "a.b.c" }, "client_assertion and client_assertion_type come together"],
    ["an assertion type without an assertion", undefined, { client_assertion_type: CLIENT_ASSERTION_TYPE }, "client_assertion and client_assertion_type come together"],
  ];
  it.each(refused)("refuses %s", (_name, header, fields, message) => {
    expect(() => presentedClient(header, fields)).toThrow(message);
    try {
      presentedClient(header, fields);
    } catch (err) {
      expect(err).toMatchObject({ status: 400, code: "invalid_request" });
    }
  });
});

describe("formDecodeBasic (RFC 6749 §2.3.1: credentials are form-encoded before base64)", () => {
  it("decodes what oauth4webapi and other clients encode", () => {
    expect(formDecodeBasic({ user: "kwc%5Fabc%2Dd", password: "kws%5Fx+y%21" })).toEqual({ user: "kwc_abc-d", password: "kws_x y!" });
    expect(formDecodeBasic(basic)).toEqual(basic);
  });

  it("refuses a malformed escape as invalid_client", () => {
    let error: unknown;
    try {
      formDecodeBasic({ user: "kwc_a", password: "%E0%A4%A" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(KeywardError);
    expect(error).toMatchObject({ status: 401, code: "invalid_client" });
  });
});
