import { describe, expect, it } from "vitest";
import { KeywardError } from "../../../src/http/errors.js";
import { parseAuthorizationDetails, parseScope, requestedCapabilities, type RequestedCapabilities } from "../../../src/oauth/request.js";

function refusal(run: () => unknown): { status: number; code: string; message: string } {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(KeywardError);
    const e = err as KeywardError;
    return { status: e.status, code: e.code, message: e.message };
  }
  throw new Error("accepted");
}

describe("parseScope", () => {
  const accepted: [string, RequestedCapabilities][] = [
    ["grant:deploy", { grant: "deploy" }],
    ["grant:4f1c2a3e-0000-4000-8000-000000000000", { grant: "4f1c2a3e-0000-4000-8000-000000000000" }],
    ["grant:deploy method:GET", { grant: "deploy", methods: ["GET"] }],
    ["method:GET method:POST", { methods: ["GET", "POST"] }],
    ["path:/v1/** path:/v2/{id}", { paths: ["/v1/**", "/v2/{id}"] }],
    ["  grant:deploy   path:/v1  ", { grant: "deploy", paths: ["/v1"] }],
    ["grant:a:b", { grant: "a:b" }], // only the first colon separates
    ["", {}],
  ];
  it.each(accepted)("%j", (scope, expected) => {
    expect(parseScope(scope)).toEqual(expected);
  });

  const refused: [string, string][] = [
    ["deploy", "unknown scope entry deploy"],
    ["grant:", "unknown scope entry grant:"],
    ["grant:a grant:b", "the scope names more than one grant"],
    ["method:get", "unknown scope entry method:get"],
    ["method:TRACE", "unknown scope entry method:TRACE"],
    ["path:v1", "unknown scope entry path:v1"],
    ["path:/v1/../admin", "unknown scope entry path:/v1/../admin"],
    ["path:/v1/%2e%2e", "unknown scope entry path:/v1/%2e%2e"],
    ["api:GET", "unknown scope entry api:GET"],
    ["openid", "unknown scope entry openid"],
    [Array.from({ length: 101 }, () => "method:GET").join(" "), "too many scope entries"],
  ];
  it.each(refused)("refuses %j", (scope, message) => {
    expect(refusal(() => parseScope(scope))).toEqual({ status: 400, code: "invalid_scope", message });
  });
});

describe("parseAuthorizationDetails", () => {
  const entry = (fields: Record<string, unknown>) => JSON.stringify([{ type: "keyward_grant", ...fields }]);

  it("takes the fields of POST /v1/tokens", () => {
    expect(parseAuthorizationDetails(entry({ grant: "deploy", methods: ["GET"], paths: ["/v1/**"], ttlSeconds: 60 }))).toEqual({
      grant: "deploy",
      methods: ["GET"],
      paths: ["/v1/**"],
      ttlSeconds: 60,
    });
    expect(parseAuthorizationDetails(entry({}))).toEqual({});
  });

  const refused: [string, string][] = [
    ["not JSON", "{"],
    ["an object, not an array", JSON.stringify({ type: "keyward_grant" })],
    ["empty", "[]"],
    ["two entries", JSON.stringify([{ type: "keyward_grant" }, { type: "keyward_grant" }])],
    ["another type", JSON.stringify([{ type: "payment_initiation" }])],
    ["an unknown field", entry({ locations: ["https://x"] })],
    ["a bad method", entry({ methods: ["get"] })],
    ["a bad path", entry({ paths: ["../x"] })],
    ["a zero TTL", entry({ ttlSeconds: 0 })],
    ["a TTL over the hard ceiling", entry({ ttlSeconds: 3601 })],
    ["a fractional TTL", entry({ ttlSeconds: 1.5 })],
  ];
  it.each(refused)("refuses %s", (_name, json) => {
    expect(refusal(() => parseAuthorizationDetails(json))).toMatchObject({ status: 400, code: "invalid_authorization_details" });
  });
});

describe("requestedCapabilities: scope and authorization_details together", () => {
  const details = (fields: Record<string, unknown>) => JSON.stringify([{ type: "keyward_grant", ...fields }]);

  it("merges fields given by one or the other", () => {
    expect(requestedCapabilities("grant:deploy method:GET", details({ paths: ["/v1"], ttlSeconds: 30 }))).toEqual({
      grant: "deploy",
      methods: ["GET"],
      paths: ["/v1"],
      ttlSeconds: 30,
    });
    expect(requestedCapabilities(undefined, undefined)).toEqual({});
    expect(requestedCapabilities("grant:deploy", details({ grant: "deploy" }))).toEqual({ grant: "deploy" });
  });

  it("refuses a field given by both, or two different grants", () => {
    expect(refusal(() => requestedCapabilities("method:GET", details({ methods: ["GET"] })))).toEqual({
      status: 400,
      code: "invalid_request",
      message: "methods given in both scope and authorization_details",
    });
    expect(refusal(() => requestedCapabilities("grant:a", details({ grant: "b" })))).toMatchObject({ code: "invalid_request" });
  });
});
