import { Octokit } from "@octokit/rest";
import { gql, GraphQLClient } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The SDK as another package imports it: through the package's "./sdk" export.
import { Keyward } from "keyward/sdk";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { createAgent, createGrant, createUpstream } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/** Just enough of GitHub's REST API, answering as GitHub does, to drive an unmodified Octokit. */
async function startFakeGithub() {
  const issues: { number: number; title: string }[] = [{ number: 1, title: "first" }];
  return startUpstream((req, res, body) => {
    const send = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(value));
    };
    const url = new URL(req.url ?? "/", "http://github");
    if (req.method === "GET" && url.pathname === "/repos/acme/api") return send(200, { id: 1, full_name: "acme/api", default_branch: "main" });
    if (req.method === "GET" && url.pathname === "/repos/acme/api/issues") return send(200, issues);
    if (req.method === "POST" && url.pathname === "/repos/acme/api/issues") {
      const issue = { number: issues.length + 1, title: (JSON.parse(body) as { title: string }).title };
      issues.push(issue);
      return send(201, issue);
    }
    if (req.method === "DELETE" && url.pathname === "/repos/acme/api") {
      res.writeHead(204);
      return res.end();
    }
    send(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" });
  });
}

// Unmodified client libraries work through Keyward by changing only their base URL and credentials.
describe("drop-in with real API clients", () => {
  let store: Store;
  let broker: TestBroker;
  let github: Awaited<ReturnType<typeof startFakeGithub>>;
  let railway: Awaited<ReturnType<typeof startGraphqlUpstream>>;
  let kw: Keyward;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    github = await startFakeGithub();
    railway = await startGraphqlUpstream();
    await createUpstream(broker, {
      name: "github",
      baseUrl: github.url,
      environment: "production",
      auth: { type: "header", header: "Authorization", template: "token {secret}" },
      secret: "ghp_real_token",
    });
    await createUpstream(broker, { name: "railway", baseUrl: railway.url, environment: "staging", protocol: "graphql", secret: "railway-real-token" });
    const agent = await createAgent(broker, "coding-agent");
    await createGrant(broker, { name: "triage", agents: [agent.id], upstream: "github", methods: ["GET", "POST"], paths: ["/repos/acme/api", "/repos/acme/api/issues"] });
    await createGrant(broker, {
      name: "railway-deploy",
      agents: [agent.id],
      upstream: "railway",
      methods: ["POST"],
      paths: ["/graphql/v2"],
      graphql: { allow: [{ operation: "query" }, { operation: "mutation", field: "serviceCreate" }] },
    });
    kw = await Keyward.connect({ url: broker.url, clientId: agent.clientId, clientSecret: agent.clientSecret });
    await kw.token({ grant: "triage" });
    await kw.token({ grant: "railway-deploy" });
  });
  afterAll(async () => {
    await broker?.close();
    await github?.close();
    await railway?.close();
    await store?.drop();
  });

  it("Octokit with the SDK's fetch: reads and writes what the grant allows, and is refused the rest", async () => {
    const octokit = new Octokit({ baseUrl: kw.proxyUrl("github"), request: { fetch: kw.proxyFetch } });
    const { data: repo } = await octokit.rest.repos.get({ owner: "acme", repo: "api" });
    expect(repo.full_name).toBe("acme/api");
    const { data: created, status } = await octokit.rest.issues.create({ owner: "acme", repo: "api", title: "from an agent" });
    expect([status, created.number]).toEqual([201, 2]);
    const { data: issues } = await octokit.rest.issues.listForRepo({ owner: "acme", repo: "api" });
    expect(issues.map((i) => i.title)).toEqual(["first", "from an agent"]);
    expect(github.received.every((r) => r.headers.authorization === "token ghp_real_token")).toBe(true);

    // Deleting the repository is not in the grant: Octokit reports Keyward's 403, GitHub never sees it.
    const refused = await octokit.rest.repos.delete({ owner: "acme", repo: "api" }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: "HttpError", status: 403 });
    expect(github.received.some((r) => r.method === "DELETE")).toBe(false);
  });

  it("Octokit with the token as its auth", async () => {
    const token = await kw.token({ grant: "triage" });
    const octokit = new Octokit({ baseUrl: kw.proxyUrl("github"), auth: token.accessToken });
    const { data } = await octokit.rest.issues.listForRepo({ owner: "acme", repo: "api" });
    expect(data.length).toBeGreaterThan(0);
  });

  it("graphql-request with the SDK's fetch: queries and allowed mutations pass, destructive ones do not", async () => {
    const client = new GraphQLClient(kw.proxyUrl("railway", "/graphql/v2"), { fetch: kw.proxyFetch });
    const { services } = await client.request<{ services: { name: string }[] }>(gql`{ services { name } }`);
    expect(services.map((s) => s.name)).toEqual(["api"]);
    const { serviceCreate } = await client.request<{ serviceCreate: { id: string } }>(
      gql`mutation Create($name: String!) { serviceCreate(name: $name) { id } }`,
      { name: "worker" },
    );
    expect(serviceCreate.id).toBe("svc-2");

    const refused = await client.request(gql`mutation { volumeDelete(volumeId: "vol-1") }`).catch((e: unknown) => e);
    expect(refused).toMatchObject({ response: { status: 403 } });
    expect(railway.state.volumes).toHaveLength(1);
    expect(railway.received.every((r) => r.headers.authorization === "Bearer railway-real-token")).toBe(true);
  });
});
