import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "undici";
import { z } from "zod";
import { requestToken } from "../../../../src/upstreams/credentials/token-endpoint.js";
import { startUpstream } from "../../../helpers/upstream.js";

const schema = z.object({ access_token: z.string(), token_type: z.literal("Bearer") });
const TOKEN = "at-do-not-leak-0123456789";

describe("requestToken", () => {
  let endpoint: Awaited<ReturnType<typeof startUpstream>>;
  const dispatcher = new Agent({ headersTimeout: 1000, bodyTimeout: 1000, connect: { timeout: 1000 } });

  beforeAll(async () => {
    endpoint = await startUpstream((req, res) => {
      const answers: Record<string, [number, string]> = {
        "/ok": [200, JSON.stringify({ access_token: TOKEN, token_type: "Bearer" })],
        "/created": [201, JSON.stringify({ access_token: TOKEN, token_type: "Bearer" })],
        "/denied": [401, JSON.stringify({ error: "invalid_client", error_description: TOKEN })],
        "/not-json": [200, `access_token=${TOKEN}`],
        "/wrong-shape": [200, JSON.stringify({ access_token: TOKEN, token_type: "mac" })],
        "/huge": [200, JSON.stringify({ access_token: "x".repeat(70 * 1024), token_type: "Bearer" })],
        "/redirect": [302, ""],
      };
      const [status, body] = answers[req.url ?? ""] ?? [404, ""];
      res.writeHead(status, { "content-type": "application/json", ...(status === 302 && { location: "/ok" }) });
      res.end(body);
    });
  });
  afterAll(async () => {
    await endpoint?.close();
    await dispatcher.close();
  });

  const call = (path: string, expectedStatus = 200) =>
    requestToken({ url: new URL(path, endpoint.url), headers: { "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=client_credentials", expectedStatus, dispatcher, deadlineMs: 5_000 }, schema);

  it("returns the parsed answer and sends the given request", async () => {
    expect(await call("/ok")).toEqual({ access_token: TOKEN, token_type: "Bearer" });
    expect(await call("/created", 201)).toEqual({ access_token: TOKEN, token_type: "Bearer" });
    const sent = endpoint.received.at(-1)!;
    expect(sent.method).toBe("POST");
    expect(sent.body).toBe("grant_type=client_credentials");
  });

  it.each([
    ["/denied", "answered 401"],
    ["/ok", "answered 200", 201],
    ["/redirect", "answered 302"],
    ["/not-json", "invalid JSON"],
    ["/wrong-shape", "without a usable token (token_type)"],
    ["/huge", "more than 65536 bytes"],
  ] as [string, string, number?][])("%s → 502, the cause says %j and never the answer", async (path, cause, expectedStatus = 200) => {
    const err = await call(path, expectedStatus).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 502, code: "upstream_credential_unavailable", message: "could not obtain a credential for the upstream" });
    const detail = String((err as Error).cause);
    expect(detail).toContain(cause);
    expect(detail).not.toContain(TOKEN);
    expect(JSON.stringify(err)).not.toContain(TOKEN);
  });

  it("an unreachable endpoint → 502", async () => {
    const err = await requestToken({ url: new URL("http://127.0.0.1:9/token"), headers: {}, body: "", expectedStatus: 200, dispatcher, deadlineMs: 5_000 }, schema).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 502, code: "upstream_credential_unavailable" });
    expect(String((err as Error).cause)).toContain("could not be reached");
  });
});
