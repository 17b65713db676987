import type { ServerResponse } from "node:http";
import { buildSchema, graphql } from "graphql";
import { gql, GraphQLClient } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/** What every event of the agent's calls records besides: the names it was made under. */
const named = (grant: string) => ({ names: { agent: "redaction-rules-agent", grant } });

/**
 * Redaction rules for secrets upstreams return on purpose: the railway preset's `variables` (through a
 * real GraphQL server and graphql-request, aliases included), a grant's opt-out (audited), JSON path
 * rules on a REST API, detectors on a streamed log, and the refusals when a body cannot be redacted.
 */

const REDACTED = "[redacted-by-keyward]";
const DATABASE_URL = "postgres://app:Pr0d-Passw0rd@db.internal:5432/app";
const GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4";
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ".repeat(3) + "\n-----END OPENSSH PRIVATE KEY-----";

let store: Store;
let broker: TestBroker;
let agent: { id: string; clientId: string; clientSecret: string };
const servers: { close(): Promise<void> }[] = [];

/** A GraphQL server shaped like Railway's: `variables` is a JSON map of a service's environment. */
async function startRailwayLike() {
  const schema = buildSchema(`
    scalar JSON
    type VariableNode { name: String! isSealed: Boolean! }
    type VariableEdge { node: VariableNode! }
    type VariableConnection { edges: [VariableEdge!]! }
    type Environment { id: ID! variables: VariableConnection! }
    type Service { id: ID! name: String! }
    type Query {
      variables(serviceId: String!): JSON!
      variablesForServiceDeployment(serviceId: String!): JSON!
      environment(id: String!): Environment!
      services: [Service!]!
    }
  `);
  const env = { DATABASE_URL, PORT: "5432", GITHUB_TOKEN };
  const rootValue = {
    variables: () => env,
    variablesForServiceDeployment: () => ({ ...env, RAILWAY_ENVIRONMENT: "production" }),
    environment: ({ id }: { id: string }) => ({ id, variables: { edges: Object.keys(env).map((name) => ({ node: { name, isSealed: false } })) } }),
    services: () => [{ id: "svc-1", name: "api" }],
  };
  const upstream = await startUpstream((_req, res, body) => {
    const { query, variables, operationName } = JSON.parse(body);
    void graphql({ schema, source: query, rootValue, variableValues: variables, operationName }).then((result) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(result));
    });
  });
  servers.push(upstream);
  return upstream;
}

/** A REST API listing env vars as Render does, and logs and oversized or non-JSON answers. */
async function startRestApi() {
  const upstream = await startUpstream((req, res: ServerResponse) => {
    const url = req.url ?? "";
    if (url.startsWith("/v1/services/svc-1/env-vars")) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify([{ envVar: { key: "DATABASE_URL", value: DATABASE_URL }, cursor: "c1" }, { envVar: { key: "PORT", value: "5432" }, cursor: "c2" }]));
    }
    if (url.startsWith("/v1/services/svc-1")) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ id: "svc-1", name: "api", note: DATABASE_URL }));
    }
    if (url.startsWith("/v1/logs")) {
      // A job log of about 1 MiB, written in 1000-byte pieces, with secrets deep inside it.
      res.writeHead(200, { "content-type": "text/plain" });
      const line = "step ok ".repeat(120) + "\n";
      const log = line.repeat(600) + `export GITHUB_TOKEN=${GITHUB_TOKEN}\n${PRIVATE_KEY}\n` + line.repeat(600) + `DATABASE_URL=${DATABASE_URL}\n`;
      const bytes = Buffer.from(log);
      for (let at = 0; at < bytes.length; at += 1000) res.write(bytes.subarray(at, at + 1000));
      return res.end();
    }
    if (url.startsWith("/v1/huge/list/env-vars")) {
      res.writeHead(200, { "content-type": "application/json" });
      const item = JSON.stringify({ envVar: { key: "K", value: "v".repeat(1000) } });
      const chunk = Buffer.from(Array(1000).fill(item).join(",") + ",");
      res.write("[");
      for (let i = 0; i < 17; i++) res.write(chunk);
      return res.end(item + "]");
    }
    if (url.startsWith("/v1/html/list/env-vars")) {
      res.writeHead(500, { "content-type": "text/html" });
      return res.end(`<html>error: ${DATABASE_URL}</html>`);
    }
    res.writeHead(404).end();
  });
  servers.push(upstream);
  return upstream;
}

async function responseEvent(requestId: string) {
  const res = await broker.admin("get", "/v1/audit?kind=proxy.response&limit=50");
  type Event = { requestId: string; status: number; reason: string | null; details: Record<string, unknown> | null };
  return (res.body.events as Event[]).find((e) => e.requestId === requestId);
}

/** A graphql-request client whose responses keep their request id, for the audit. */
function client(upstream: string, token: string) {
  const ids: string[] = [];
  const c = new GraphQLClient(`${broker.url}/proxy/${upstream}/graphql/v2`, {
    headers: { authorization: `Bearer ${token}` },
    responseMiddleware: (response) => {
      if (!(response instanceof Error)) ids.push(response.headers.get("x-request-id") ?? "");
    },
  });
  return { c, lastRequestId: () => ids.at(-1)! };
}

beforeAll(async () => {
  store = newStore();
  broker = await startBroker(store);
  agent = await createAgent(broker, "redaction-rules-agent");
  const railway = await startRailwayLike();
  const rest = await startRestApi();
  await createUpstream(broker, { name: "railway", baseUrl: railway.url, environment: "staging", protocol: "graphql", presets: ["railway"], secret: "railway-team-token-0123456789" });
  await createUpstream(broker, { name: "render", baseUrl: rest.url, environment: "staging", secret: "render-api-key-0123456789" });
  const base = { agents: [agent.id], methods: ["GET", "POST"] };
  await createGrant(broker, { ...base, name: "railway-read", upstream: "railway", paths: ["/graphql/v2"] });
  await createGrant(broker, { ...base, name: "railway-env", upstream: "railway", paths: ["/graphql/v2"], redactOptOut: ["railway.variables"] });
  await createGrant(broker, {
    ...base,
    name: "render-read",
    upstream: "render",
    paths: ["/v1/**"],
    redact: [{ path: "/v1/*/*/env-vars", json: "$[*].envVar.value" }, { detector: "github-token" }, { detector: "private-key", path: "/v1/logs/**" }, { detector: "connection-string", path: "/v1/logs/**" }],
  });
});

afterAll(async () => {
  await broker?.close();
  await Promise.all(servers.map((s) => s.close()));
  await store?.drop();
});

describe("the railway preset", () => {
  it("redacts variables by default, through aliases and fragments, names kept; the audit counts it by preset", async () => {
    const token = await tokenFor(broker, agent, { grant: "railway-read" });
    const { c, lastRequestId } = client("railway", token);
    const data = await c.request<{ userVariables: Record<string, string>; deploy: Record<string, string>; environment: { variables: { edges: { node: { name: string; isSealed: boolean } }[] } } }>(gql`
      query ServiceVariablesForEdit {
        userVariables: variables(serviceId: "svc-1")
        ...Deploy
        environment(id: "env-1") { variables { edges { node { name isSealed } } } }
      }
      fragment Deploy on Query { ... on Query { deploy: variablesForServiceDeployment(serviceId: "svc-1") } }
    `);
    expect(data.userVariables).toEqual({ DATABASE_URL: REDACTED, PORT: REDACTED, GITHUB_TOKEN: REDACTED });
    expect(data.deploy).toEqual({ DATABASE_URL: REDACTED, PORT: REDACTED, GITHUB_TOKEN: REDACTED, RAILWAY_ENVIRONMENT: REDACTED });
    // `environment.variables` is a `variables` field too: its names go, its booleans stay.
    expect(data.environment.variables.edges[0]!.node).toEqual({ name: REDACTED, isSealed: false });
    const event = await responseEvent(lastRequestId());
    expect(event?.details).toEqual({ redactions: 10, redactedBy: { "railway.variables": 10 }, ...named("railway-read") });
  });

  it("a query that selects no variables streams through untouched and records no rule", async () => {
    const token = await tokenFor(broker, agent, { grant: "railway-read" });
    const { c, lastRequestId } = client("railway", token);
    expect(await c.request(gql`{ variables: services { name } }`)).toEqual({ variables: [{ name: "api" }] });
    expect((await responseEvent(lastRequestId()))?.details).toEqual(named("railway-read"));
  });

  it("a grant that opts out sees the values, and every call it made them visible on is audited so", async () => {
    const token = await tokenFor(broker, agent, { grant: "railway-env" });
    const { c, lastRequestId } = client("railway", token);
    const data = await c.request<{ v: Record<string, string> }>(gql`{ v: variables(serviceId: "svc-1") }`);
    expect(data.v.DATABASE_URL).toBe(DATABASE_URL);
    expect((await responseEvent(lastRequestId()))?.details).toEqual({ redactOptOut: ["railway.variables"], ...named("railway-env") });
    await c.request(gql`{ services { name } }`);
    expect((await responseEvent(lastRequestId()))?.details).toEqual(named("railway-env"));
  });
});

describe("grant rules on a REST API", () => {
  const get = (token: string, path: string) => broker.http().get(`/proxy/render${path}`).set("authorization", `Bearer ${token}`);

  it("a JSON path rule redacts the selected values of the matching path only, with an exact Content-Length", async () => {
    const token = await tokenFor(broker, agent, { grant: "render-read" });
    const res = await get(token, "/v1/services/svc-1/env-vars");
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      { envVar: { key: "DATABASE_URL", value: REDACTED }, cursor: "c1" },
      { envVar: { key: "PORT", value: REDACTED }, cursor: "c2" },
    ]);
    expect(res.headers["content-length"]).toBe(String(Buffer.byteLength(res.text)));
    expect((await responseEvent(res.headers["x-request-id"]!))?.details).toEqual({ redactions: 2, redactedBy: { "redact[0]": 2 }, ...named("render-read") });
    // Another path: the JSON rule does not apply (the connection-string detector is scoped to /v1/logs/**).
    const other = await get(token, "/v1/services/svc-1");
    expect(other.body.note).toBe(DATABASE_URL);
  });

  it("detectors redact a streamed log across chunk boundaries, each counted under its rule", async () => {
    const token = await tokenFor(broker, agent, { grant: "render-read" });
    const res = await get(token, "/v1/logs/job-1");
    expect(res.status).toBe(200);
    expect(res.text).not.toContain(GITHUB_TOKEN);
    expect(res.text).not.toContain("b3BlbnNzaC1rZXktdjEAAAAA");
    expect(res.text).not.toContain("Pr0d-Passw0rd");
    expect(res.text).toContain(`export GITHUB_TOKEN=${REDACTED}\n${REDACTED}\n`);
    expect(res.text).toContain(`DATABASE_URL=postgres://app:${REDACTED}@db.internal:5432/app`);
    expect(res.headers["content-length"]).toBeUndefined();
    expect((await responseEvent(res.headers["x-request-id"]!))?.details).toEqual({
      redactions: 3,
      redactedBy: { "redact[1]": 1, "redact[2]": 1, "redact[3]": 1 },
      ...named("render-read"),
    });
  });

  it("a body larger than the redaction limit is refused with 502, never passed on, and audited", async () => {
    const token = await tokenFor(broker, agent, { grant: "render-read" });
    const res = await get(token, "/v1/huge/list/env-vars");
    expect(res.status).toBe(502);
    expect(res.headers["keyward-error"]).toBe("response_too_large_to_redact");
    expect(res.text).not.toContain("vvvvvvvvvv");
    expect(await responseEvent(res.headers["x-request-id"]!)).toMatchObject({ status: 502, reason: "response_too_large_to_redact" });
  });

  it("a body the JSON rule cannot read is refused with 502", async () => {
    const token = await tokenFor(broker, agent, { grant: "render-read" });
    const res = await get(token, "/v1/html/list/env-vars");
    expect(res.status).toBe(502);
    expect(res.headers["keyward-error"]).toBe("response_unredactable");
    expect(res.text).not.toContain("Pr0d-Passw0rd");
  });
});

describe("grant validation", () => {
  const grant = (body: Record<string, unknown>) => broker.admin("post", "/v1/grants", { agents: [agent.id], methods: ["GET"], paths: ["/**"], ...body });

  it("refuses malformed rules, field rules on a non-GraphQL upstream, and opt-outs the upstream's presets do not offer", async () => {
    const badPath = await grant({ name: "bad-json", upstream: "render", redact: [{ json: "value" }] });
    expect(badPath.status).toBe(400);
    const badDetector = await grant({ name: "bad-detector", upstream: "render", redact: [{ detector: "everything" }] });
    expect(badDetector.status).toBe(400);
    const misfit = await grant({ name: "misfit", upstream: "render", redact: [{ graphqlField: "variables" }] });
    expect(misfit.status).toBe(400);
    expect(misfit.body.error).toMatchObject({ code: "policy_misfit", details: [expect.stringContaining("graphqlField")] });
    const optOut = await grant({ name: "opt-out", upstream: "render", redactOptOut: ["railway.variables"] });
    expect(optOut.status).toBe(400);
    expect(optOut.body.error).toMatchObject({ code: "policy_misfit", details: [expect.stringContaining("railway.variables")] });
  });

  it("shows the rules it stores, and an update replaces them", async () => {
    const created = await grant({ name: "shown", upstream: "railway", redact: [{ graphqlField: "secrets" }] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ redact: [{ graphqlField: "secrets" }], redactOptOut: [] });
    const updated = await broker.admin("patch", `/v1/grants/${created.body.id}`, { redactOptOut: ["railway.variables"] });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ redact: [{ graphqlField: "secrets" }], redactOptOut: ["railway.variables"] });
  });
});
