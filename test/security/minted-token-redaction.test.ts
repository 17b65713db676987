import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileCredential } from "../../src/upstreams/credentials/index.js";
import type { OutgoingRequest } from "../../src/upstreams/credentials/contract.js";
import { title } from "./cases.js";

/** A token endpoint answering each request with a new token, and `expires_in` only when told to. */
async function startTokenEndpoint(expiresIn: () => number | undefined) {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const lifetime = expiresIn();
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ access_token: `upstream-access-token-${++n}`, token_type: "Bearer", ...(lifetime !== undefined && { expires_in: lifetime }) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe(title("TOK-41"), () => {
  let endpoint: Awaited<ReturnType<typeof startTokenEndpoint>>;
  let lifetime: number | undefined;
  const dispatcher = new Agent();
  beforeAll(async () => {
    endpoint = await startTokenEndpoint(() => lifetime);
  });
  afterAll(async () => {
    await endpoint.close();
    await dispatcher.close();
  });

  /** An oauth2-client-credentials upstream on a clock the test moves; `call()` is one proxied call. */
  const upstream = () => {
    const clock = { now: 1_000_000 };
    const credential = compileCredential(
      { type: "oauth2-client-credentials", tokenUrl: endpoint.url, clientId: "keyward", clientAuth: "client_secret_basic" },
      "client-secret-of-the-upstream",
      { baseUrl: new URL("https://api.example.test"), dispatcher, now: () => clock.now, tokenDeadlineMs: 5_000 },
    );
    const call = async () => {
      const request: OutgoingRequest = { method: "GET", url: new URL("https://api.example.test/v1"), headers: {}, body: undefined };
      await credential.prepare(request, { grant: { methods: ["GET"], paths: ["/**"] } });
      return request.headers.authorization!.replace("Bearer ", "");
    };
    return { clock, credential, call };
  };

  it("a token whose answer gave no expires_in is used for a minute, but redacted from answers for a day, as it may still be valid upstream", async () => {
    lifetime = undefined;
    const { clock, credential, call } = upstream();
    const first = await call();
    clock.now += 5 * 60_000; // replaced (used for a minute only) and replaced again since
    const second = await call();
    clock.now += 5 * 60_000;
    await call();
    expect(second).not.toBe(first);
    // The upstream still takes the first one, for all Keyward knows: an answer repeating it is redacted.
    expect(credential.injectedSecrets()).toContain(first);
    expect(credential.injectedSecrets()).toContain(second);
    clock.now += 24 * 3600_000;
    await call();
    expect(credential.injectedSecrets()).not.toContain(first);
  });

  it("a token with an expires_in is redacted until then, and forgotten after", async () => {
    lifetime = 600;
    const { clock, credential, call } = upstream();
    const first = await call();
    clock.now += 590_000;
    await call();
    expect(credential.injectedSecrets()).toContain(first);
    clock.now += 600_000; // the first expired, and the second replaced
    await call();
    expect(credential.injectedSecrets()).not.toContain(first);
  });
});
