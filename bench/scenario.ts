/**
 * The benchmark scenario: one upstream, several agents each with its own grant, 32 live tokens, and a
 * request mix of 80% allowed calls (GET and POST with a small JSON body) and 20% denied ones (a DELETE
 * hit by a deny rule, a path outside the grant). Every request rotates to the next token, so no cache
 * keyed by token, grant or path can hide the cost of a cold check.
 */
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { RequestSpec } from "./load.js";

export const UPSTREAM_NAME = "bench";
export const PROXY_PREFIX = `/proxy/${UPSTREAM_NAME}`;
/** The upstream's credential: the redaction scenario's upstream echoes it in its responses. */
export const UPSTREAM_SECRET = "bench-upstream-secret";

/** An access token with the claims Keyward's tokens carry, signed ES256: what raw signing and the token floor sign. */
export function signBenchToken(privateKey: CryptoKey, options: { clientId: string; grant: string; kid: string }): Promise<string> {
  return new SignJWT({
    client_id: options.clientId,
    grant: options.grant,
    scope: "bench:GET bench:POST bench:DELETE",
    cap: { upstream: UPSTREAM_NAME, methods: ["GET", "POST", "DELETE"], paths: ["/v1/**", "/stream/**"] },
  })
    .setProtectedHeader({ alg: "ES256", kid: options.kid, typ: "at+jwt" })
    .setIssuer("http://keyward.bench")
    .setSubject(randomUUID())
    .setAudience("keyward")
    .setIssuedAt()
    .setNotBefore("0s")
    .setExpirationTime("1h")
    .setJti(randomUUID())
    .sign(privateKey);
}

export type BenchAgent = { id: string; clientId: string; clientSecret: string; grant: string };
/** `tokenRetries`: token requests of the set-up that failed (5xx) and were tried again. */
export type Scenario = { agents: BenchAgent[]; tokens: string[]; tokenRetries: { status: number; body: string }[] };

async function call(baseUrl: string, adminKey: string, method: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

export const basicAuth = (a: { clientId: string; clientSecret: string }) =>
  "Basic " + Buffer.from(`${a.clientId}:${a.clientSecret}`).toString("base64");

/** Creates the upstream, agents and grants through the admin API, then issues the tokens. */
export async function setupScenario(
  baseUrl: string,
  adminKey: string,
  upstreamUrl: string,
  options: { agents: number; tokensPerAgent: number; upstreamCa?: string },
): Promise<Scenario> {
  await call(baseUrl, adminKey, "POST", "/v1/upstreams", {
    name: UPSTREAM_NAME,
    baseUrl: upstreamUrl,
    environment: "bench",
    auth: { type: "header", header: "Authorization", template: "Bearer {secret}" },
    secret: UPSTREAM_SECRET,
    // An https upstream whose certificate comes from a private CA (the tunnel benchmark).
    ...(options.upstreamCa && { tls: { ca: options.upstreamCa } }),
  });
  const agents: BenchAgent[] = [];
  for (let i = 0; i < options.agents; i++) {
    const agent = (await call(baseUrl, adminKey, "POST", "/v1/agents", { name: `bench-agent-${i}` })) as BenchAgent;
    const grant = `bench-grant-${i}`;
    await call(baseUrl, adminKey, "POST", "/v1/grants", {
      name: grant,
      agents: [agent.id],
      upstream: UPSTREAM_NAME,
      methods: ["GET", "POST", "DELETE"],
      paths: ["/v1/**", "/stream/**"],
      deny: [{ method: "DELETE" }],
      maxTtlSeconds: 3600,
    });
    agents.push({ id: agent.id, clientId: agent.clientId, clientSecret: agent.clientSecret, grant });
  }
  // 4 at a time (each costs a scrypt on the libuv pool); a 5xx is retried (at most 3 times) and recorded.
  const tokenRetries: Scenario["tokenRetries"] = [];
  const issueOne = async (agent: BenchAgent): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(baseUrl + "/v1/tokens", {
        method: "POST",
        headers: { authorization: basicAuth(agent), "content-type": "application/json" },
        body: JSON.stringify({ grant: agent.grant }),
      });
      const text = await res.text();
      if (res.status === 200) return (JSON.parse(text) as { access_token: string }).access_token;
      if (res.status < 500 || attempt > 3) throw new Error(`issue token: ${res.status} ${text}`);
      tokenRetries.push({ status: res.status, body: text.slice(0, 300) });
    }
  };
  const queue = agents.flatMap((agent) => Array.from({ length: options.tokensPerAgent }, () => agent));
  const tokens: string[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let agent = queue.shift(); agent; agent = queue.shift()) tokens.push(await issueOne(agent));
    }),
  );
  return { agents, tokens, tokenRetries };
}

/**
 * The n-th request of the mixed scenario. `prefix` is `/proxy/bench` through a proxy and empty for
 * direct calls; the plain proxy and the upstream answer the denied calls too (they check nothing).
 */
export function mixedRequest(prefix: string, tokens: readonly string[]): (n: number) => RequestSpec {
  return (n) => {
    const headers = { authorization: `Bearer ${tokens[(n + Math.floor(n / 10)) % tokens.length]}` };
    const id = n % 1000;
    switch (n % 10) {
      case 6:
      case 7:
        return { method: "POST", path: `${prefix}/v1/items`, headers, body: `{"name":"item-${id}","tags":["a","b"]}` };
      case 8:
        return { method: "DELETE", path: `${prefix}/v1/items/${id}`, headers }; // denied by the deny rule
      case 9:
        return { method: "GET", path: `${prefix}/internal/metrics`, headers }; // denied: outside the grant
      default:
        return { method: "GET", path: `${prefix}/v1/items/${id}?expand=owner`, headers };
    }
  };
}

export function streamRequest(prefix: string, tokens: readonly string[]): (n: number) => RequestSpec {
  return (n) => ({
    method: "GET",
    path: `${prefix}/stream/1mib`,
    headers: { authorization: `Bearer ${tokens[n % tokens.length]}` },
  });
}

export function tokenRequest(agents: readonly BenchAgent[]): (n: number) => RequestSpec {
  return (n) => {
    const agent = agents[n % agents.length]!;
    return { method: "POST", path: "/v1/tokens", headers: { authorization: basicAuth(agent) }, body: JSON.stringify({ grant: agent.grant }) };
  };
}
