import { describe, expect, it } from "vitest";
import { badRequest, forbidden, KeywardError, notFound, unauthenticated, unavailable, validationFailed } from "../../../src/http/errors.js";
import { toOAuthErrorResponse } from "../../../src/oauth/errors.js";

describe("toOAuthErrorResponse: every error in the RFC 6749 shape", () => {
  const invalidClient = unauthenticated("invalid_client", "invalid client credentials");
  invalidClient.extra.headers = { "www-authenticate": 'Basic realm="keyward"' };

  const cases: [string, unknown, number, string][] = [
    ["an OAuth code passes through", new KeywardError(400, "unsupported_grant_type", "no"), 400, "unsupported_grant_type"],
    ["invalid_client is always 401", invalidClient, 401, "invalid_client"],
    ["a missing admin key at introspection", unauthenticated("unauthenticated", "unknown or revoked admin key"), 401, "invalid_token"],
    ["an admin key without the role", forbidden("role auditor may not introspect"), 403, "insufficient_scope"],
    ["an unknown grant", notFound("grant x"), 400, "invalid_scope"],
    ["a grant the agent is not in", forbidden("the agent is not in this grant", "not_in_grant"), 400, "invalid_scope"],
    ["widening", forbidden("the grant does not allow DELETE", "widening_refused"), 400, "invalid_scope"],
    ["a schema failure", validationFailed([]), 400, "invalid_request"],
    ["another 400", badRequest("invalid_json", "bad"), 400, "invalid_request"],
    ["an unsupported media type", { code: "FST_ERR_CTP_INVALID_MEDIA_TYPE", statusCode: 415 }, 415, "invalid_request"],
    ["a body too large", { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 }, 413, "invalid_request"],
    ["stale revocation state", unavailable("revocation_state_stale", "not current"), 503, "temporarily_unavailable"],
    ["anything unexpected", new Error("database exploded: password=hunter2"), 500, "server_error"],
  ];

  it.each(cases)("%s → %s %s", (_name, err, status, error) => {
    const response = toOAuthErrorResponse(err);
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error, error_description: expect.any(String) });
  });

  it("describes with the message and the reason, never internal text", () => {
    expect(toOAuthErrorResponse(forbidden("the grant does not allow DELETE", "widening_refused")).body.error_description).toBe(
      "request denied: the grant does not allow DELETE",
    );
    expect(toOAuthErrorResponse(new Error("password=hunter2")).body.error_description).toBe("internal error");
  });

  it("keeps Keyward's own code beside the OAuth one, for the Keyward-Error header: the real reason an invalid_scope stands for", () => {
    expect(toOAuthErrorResponse(forbidden("the agent is not in this grant", "not_in_grant"))).toMatchObject({ code: "not_in_grant", body: { error: "invalid_scope" } });
    expect(toOAuthErrorResponse(forbidden("the grant does not allow DELETE", "widening_refused"))).toMatchObject({ code: "widening_refused", body: { error: "invalid_scope" } });
    expect(toOAuthErrorResponse(validationFailed([]))).toMatchObject({ code: "validation_failed", body: { error: "invalid_request" } });
    expect(toOAuthErrorResponse(new Error("password=hunter2"))).toMatchObject({ code: "internal_error", body: { error: "server_error" } });
  });

  it("keeps only a 401's WWW-Authenticate header, and Retry-After", () => {
    expect(toOAuthErrorResponse(invalidClient).headers).toEqual({ "www-authenticate": 'Basic realm="keyward"' });
    expect(toOAuthErrorResponse(forbidden("role auditor may not introspect")).headers).toEqual({});
    const busy = new KeywardError(503, "client_auth_busy", "busy", { headers: { "retry-after": "1", "x-other": "no" } });
    expect(toOAuthErrorResponse(busy)).toMatchObject({ status: 503, code: "client_auth_busy", headers: { "retry-after": "1" }, body: { error: "temporarily_unavailable" } });
    expect(toOAuthErrorResponse(busy).headers).toEqual({ "retry-after": "1" });
  });

  it("error_description holds only the characters RFC 6749 allows, quotes as plain ASCII quotes", () => {
    const body = toOAuthErrorResponse(new KeywardError(400, "invalid_request", 'bad "quote" \\ and é\n')).body;
    expect(body.error_description).toBe("bad 'quote' / and ??");
    const typographic = toOAuthErrorResponse(new KeywardError(400, "invalid_request", "the grant \u201cops\u201d \u2014 it\u2019s `x`\u2026")).body;
    expect(typographic.error_description).toBe("the grant 'ops' - it's 'x'...");
  });
});
