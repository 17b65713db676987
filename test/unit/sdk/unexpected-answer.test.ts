import { describe, expect, it } from "vitest";
import { Keyward, KeywardApiError } from "../../../src/sdk/index.js";

/** What something else than the broker answers at its URL (a captive portal, a misrouted proxy): a typed error, never a TypeError. */
describe("the SDK on answers the broker would not send", () => {
  const fakeBroker = (tokenAnswer: { status: number; type: string; body: string }) =>
    Keyward.connect({
      url: "http://broker.invalid",
      clientId: "kwc_x",
      clientSecret: "kws_x",
      fetch: async (input) =>
        String(input).endsWith("/.well-known/oauth-authorization-server")
          ? new Response("{}", { headers: { "content-type": "application/json" } })
          : new Response(tokenAnswer.body, { status: tokenAnswer.status, headers: { "content-type": tokenAnswer.type } }),
    });

  it.each([
    ["a token answer without its fields", { status: 200, type: "application/json", body: "{}" }],
    ["a token answer with a string lifetime", { status: 200, type: "application/json", body: '{"access_token":"a","expires_in":"900","scope":"u:GET","jti":"j"}' }],
    ["an HTML page", { status: 200, type: "text/html", body: "<html>sign in to the Wi-Fi</html>" }],
    ["JSON null", { status: 200, type: "application/json", body: "null" }],
  ])("%s: unexpected_answer", async (_name, answer) => {
    const kw = await fakeBroker(answer);
    const err = await kw.token({ grant: "g" }).catch((e: unknown) => e);
    // Before: TypeError "Cannot read properties of undefined (reading 'split')", or a SyntaxError from JSON.parse.
    expect(err).toBeInstanceOf(KeywardApiError);
    expect((err as KeywardApiError).code).toBe("unexpected_answer");
  });
});
