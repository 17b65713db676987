import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { cli, runCli, runCliOnTerminal } from "../helpers/cli.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { ACCESS_TOKEN_TYPE, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Event = {
  id: string;
  at: string;
  kind: string;
  agentId: string | null;
  grantId: string | null;
  decision: string | null;
  reason: string | null;
  details: { names?: { agent?: string; grant?: string }; operations?: string[] } | null;
};

/**
 * What the security team reads after the fact: every event names the agent and grant it was made under,
 * even once they are renamed or deleted; `keyward audit` shows those names, the operations a call ran and
 * times with their zone, and filters by refusal code; destructive commands say on a terminal what they
 * will cut off before doing it.
 */
describe("forensic clarity", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let graphqlUpstream: Awaited<ReturnType<typeof startGraphqlUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let deployGrant: { id: string };
  let env: Record<string, string>;

  beforeAll(async () => {
    upstream = await startUpstream();
    graphqlUpstream = await startGraphqlUpstream();
    store = newStore();
    broker = await startBroker(store);
    env = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY };
    await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: "forensics-upstream-secret" });
    await createUpstream(broker, { name: "railway-staging", baseUrl: graphqlUpstream.url, environment: "staging", secret: "forensics-graphql-secret", protocol: "graphql" });
    agent = await createAgent(broker, "deploy-bot");
    deployGrant = await createGrant(broker, { name: "deploy-staging", agents: [agent.id], upstream: "hosting-staging", methods: ["GET"], paths: ["/v1/**"] });
    await createGrant(broker, {
      name: "railway-ops",
      agents: [agent.id],
      upstream: "railway-staging",
      methods: ["POST"],
      paths: ["/graphql/v2"],
      graphql: { allow: [{ operation: "query" }, { operation: "mutation" }], deny: [{ field: "volumeDelete" }] },
    });
    await createGrant(broker, { name: "prod-restore", agents: [agent.id], upstream: "hosting-staging", methods: ["POST"], paths: ["/v1/**"], requiresApproval: true });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await graphqlUpstream?.close();
    await store?.drop();
  });

  const call = (token: string, method: "get" | "delete", path: string) => broker.http()[method](`/proxy/hosting-staging${path}`).set("authorization", `Bearer ${token}`);
  const graphql = (token: string, query: string) =>
    broker.http().post("/proxy/railway-staging/graphql/v2").set("authorization", `Bearer ${token}`).set("content-type", "application/json").send({ query });
  const eventsOfAgent = async (): Promise<Event[]> => (await broker.admin("get", `/v1/audit?agentId=${agent.id}&limit=500`)).body.events;

  it("records the agent's and grant's names in every event of a call, an issuance, a refusal, an exchange and an approval", async () => {
    const token = await tokenFor(broker, agent, { grant: "deploy-staging" });
    expect((await call(token, "get", "/v1/projects")).status).toBe(200);
    expect((await call(token, "delete", "/v1/projects/p1")).status).toBe(403);
    expect((await issueToken(broker, agent, { grant: "deploy-staging", methods: ["DELETE"] })).status).toBe(403);
    const exchanged = await postForm(broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: ACCESS_TOKEN_TYPE, scope: "method:GET" });
    expect(exchanged.status).toBe(200);
    const railway = await tokenFor(broker, agent, { grant: "railway-ops" });
    const twice = await graphql(railway, 'mutation { a: serviceCreate(name: "web") { id } b: serviceCreate(name: "worker") { id } }');
    expect(twice.status).toBe(200);
    expect((await graphql(railway, 'mutation { volumeDelete(volumeId: "vol-1") }')).status).toBe(403);
    const held = await issueToken(broker, agent, { grant: "prod-restore" });
    expect(held.status).toBe(202);
    expect((await broker.admin("post", `/v1/approvals/${held.body.approvalId}/deny`, { note: "not today" })).status).toBe(200);

    const events = await eventsOfAgent();
    const grants = (await broker.admin("get", "/v1/grants")).body.grants as { id: string; name: string }[];
    const grantNames = new Map(grants.map((g) => [g.id, g.name]));
    const kinds = (kind: string, decision?: string) => events.filter((e) => e.kind === kind && (decision === undefined || e.decision === decision));
    // Two issued here and one by exchange, one widening refused, two calls allowed (each with its response) and two refused,
    // one request held for a human and denied.
    expect(kinds("approval.requested")).toHaveLength(1);
    expect(kinds("approval.decided", "deny")).toHaveLength(1);
    expect(kinds("token.issued")).toHaveLength(3);
    expect(kinds("token.refused")).toHaveLength(1);
    expect(kinds("proxy", "allow")).toHaveLength(2);
    expect(kinds("proxy.response")).toHaveLength(2);
    expect(kinds("proxy", "deny")).toHaveLength(2);
    for (const event of events) {
      const grant = event.grantId === null ? {} : { grant: grantNames.get(event.grantId) };
      expect(event.details?.names, `${event.kind} ${event.decision}`).toEqual({ agent: "deploy-bot", ...grant });
    }
    expect(events.filter((e) => e.grantId === null).map((e) => e.kind)).toEqual(["admin.change"]);
    expect(kinds("proxy", "allow").map((e) => e.details?.operations ?? null)).toEqual([["mutation serviceCreate ×2"], null]);
  });

  it("keeps the names an event was made under when the grant is renamed, and records the new one from then on", async () => {
    const before = (await eventsOfAgent()).length;
    expect((await broker.admin("patch", `/v1/grants/${deployGrant.id}`, { name: "deploy-staging-v2" })).status).toBe(200);
    const token = await tokenFor(broker, agent, { grant: "deploy-staging-v2" });
    expect((await call(token, "get", "/v1/projects")).status).toBe(200);
    const events = await eventsOfAgent();
    const named = (event: Event) => event.details?.names?.grant;
    expect(events.slice(0, events.length - before).filter((e) => e.grantId === deployGrant.id).map(named)).toEqual([
      "deploy-staging-v2",
      "deploy-staging-v2",
      "deploy-staging-v2",
    ]);
    expect(new Set(events.slice(events.length - before).filter((e) => e.grantId === deployGrant.id).map(named))).toEqual(new Set(["deploy-staging"]));
  });

  it("asks on a terminal before removing or revoking, saying which live tokens it cuts off; anything but yes changes nothing", async () => {
    const asked = async (args: string[], question: string) => {
      const result = await runCliOnTerminal(args, { env, typed: "n\n" });
      expect(result.code, result.stdout).toBe(1);
      expect(result.stdout).toContain(`This will ${question}.`);
      expect(result.stdout).toContain("Continue? [y/N] (--yes skips this question)");
      expect(result.stdout).toContain("cancelled: nothing was changed");
    };
    // Live now: deploy-bot's railway-ops token and three deploy-staging-v2 ones (one issued, one exchanged, one after the rename).
    const agentTokens = "now 4 live tokens (grants deploy-staging-v2, railway-ops)";
    await asked(["agent", "rm", "deploy-bot"], `remove agent deploy-bot (${agent.id}) and revoke every token it holds, ${agentTokens}; it leaves grants deploy-staging-v2, prod-restore, railway-ops; its client credentials stop working`);
    await asked(["grant", "rm", "deploy-staging-v2"], `remove grant deploy-staging-v2 (${deployGrant.id}) and revoke every token issued under it, now 3 live tokens (agents deploy-bot)`);
    await asked(["upstream", "rm", "railway-staging"], "remove upstream railway-staging and delete its stored credential; grants railway-ops still use it, so it is refused until they are removed");
    await asked(["revoke", "--upstream", "railway-staging"], "revoke every token issued so far for upstream railway-staging: now 1 live token (agents deploy-bot; grants railway-ops)");
    await asked(["revoke", "--all"], "revoke every token issued so far, for every agent: now 4 live tokens (agents deploy-bot; grants deploy-staging-v2, railway-ops)");
    await asked(["kill-switch", "engage"], "freeze every agent token, now 4 live tokens (agents deploy-bot), and any issued while it is engaged, until an admin lifts it");
    expect((await broker.admin("get", "/v1/tokens")).body.tokens).toHaveLength(4);
    expect((await broker.admin("get", "/v1/kill-switch")).body.engaged).toBe(false);

    // `yes` goes ahead; --yes does not ask at all.
    const removed = await runCliOnTerminal(["grant", "rm", "deploy-staging-v2"], { env, typed: "yes\n" });
    expect(removed.code, removed.stdout).toBe(0);
    expect(removed.stdout).toContain("removed grant deploy-staging-v2; its tokens are revoked");
    const withoutAsking = await runCliOnTerminal(["grant", "rm", "railway-ops", "--yes"], { env });
    expect(withoutAsking.code, withoutAsking.stdout).toBe(0);
    expect(withoutAsking.stdout).not.toContain("Continue?");
    expect((await broker.admin("get", "/v1/tokens")).body.tokens).toEqual([]);
    expect((await runCliOnTerminal(["agent", "rm", "deploy-bot", "--yes"], { env })).code).toBe(0);
  });

  it("still names the deleted agent and grants in its events, shown by `keyward audit` with times in the zone asked for", async () => {
    const events = await eventsOfAgent();
    expect(events.every((e) => e.details?.names?.agent === "deploy-bot")).toBe(true);

    const search = async (...args: string[]) => (await cli(["audit", "search", "--agent-id", agent.id, ...args], { env })).trim().split("\n");
    const [header, ...rows] = await search("--tz", "Asia/Kolkata", "--kind", "proxy");
    const columns = header!.split("\t");
    expect(columns).toEqual(["id", "at", "kind", "decision", "actor", "agent", "grant", "method", "upstream", "path", "operations", "status", "reason"]);
    const cells = rows.map((row) => Object.fromEntries(row.split("\t").map((cell, i) => [columns[i], cell])));
    expect(cells).toHaveLength(5);
    for (const row of cells) {
      expect(row.agent).toBe("deploy-bot");
      // India is 5:30 ahead of UTC, all year.
      expect(row.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30$/);
    }
    expect(cells.map((row) => row.grant)).toEqual(["deploy-staging-v2", "railway-ops", "railway-ops", "deploy-staging", "deploy-staging"]);
    expect(cells.find((row) => row.upstream === "railway-staging" && row.decision === "allow")).toMatchObject({ operations: "mutation serviceCreate ×2" });
    const oldest = events.filter((e) => e.kind === "proxy").at(-1)!;
    const inKolkata = new Date(Date.parse(oldest.at) + 5.5 * 3_600_000).toISOString().replace(/Z$/, "+05:30");
    expect(cells.at(-1)).toMatchObject({ id: oldest.id, at: inKolkata });

    // Without --tz or $TZ: UTC, marked Z; $TZ is respected.
    const [, utcRow] = await search("--kind", "token.refused");
    expect(utcRow!.split("\t")[1]).toMatch(/Z$/);
    const [, parisRow] = (await cli(["audit", "search", "--agent-id", agent.id, "--kind", "token.refused"], { env: { ...env, TZ: "Europe/Paris" } })).trim().split("\n");
    expect(parisRow!.split("\t")[1]).toMatch(/\+0[12]:00$/);
    const unknownZone = await runCli(["audit", "search", "--tz", "Mars/Olympus_Mons"], { env });
    expect(unknownZone.code).toBe(1);
    expect(unknownZone.stderr).toContain('unknown time zone "Mars/Olympus_Mons"');

    // On a terminal, tail prints a line per event, the names spelled out.
    const tail = await runCliOnTerminal(["audit", "tail", "-n", "1", "--agent-name", "deploy-bot", "--kind", "proxy", "--decision", "deny", "--tz", "America/New_York"], { env });
    expect(tail.code, tail.stdout).toBe(0);
    expect(tail.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[45]:00 {2}proxy {15}deny {3}agent:\S+ {2}agent deploy-bot grant railway-ops {2}POST {2}railway-staging {2}\/graphql\/v2 {2}403 {2}deny_rule\r?\n$/);

    // By the names recorded, the agent being gone: every event of deploy-bot; only the events of the grant before its rename.
    const [, ...byAgentName] = (await cli(["audit", "search", "--agent-name", "deploy-bot", "--limit", "500"], { env })).trim().split("\n");
    expect(byAgentName.map((row) => row.split("\t")[0])).toEqual(events.map((e) => e.id));
    const [, ...byOldGrantName] = (await cli(["audit", "search", "--grant-name", "deploy-staging"], { env })).trim().split("\n");
    const ofGrant = (await broker.admin("get", `/v1/audit?grantId=${deployGrant.id}&limit=500`)).body.events as Event[];
    const underOldName = ofGrant.filter((e) => e.details?.names?.grant === "deploy-staging");
    expect(underOldName.length).toBeLessThan(ofGrant.length);
    expect(underOldName.length).toBeGreaterThan(0);
    expect(byOldGrantName.map((row) => row.split("\t")[0])).toEqual(underOldName.map((e) => e.id));
    expect((await broker.admin("get", "/v1/audit?agentName=nobody")).body.events).toEqual([]);

    // By refusal code: only the calls refused for it.
    const [, ...denied] = await search("--reason", "method_not_granted");
    expect(denied).toHaveLength(1);
    expect(denied[0]).toContain("\tDELETE\thosting-staging\t/v1/projects/p1\t");
    const [, ...denyRule] = await search("--reason", "deny_rule");
    expect(denyRule).toHaveLength(1);
    expect(denyRule[0]).toContain("\trailway-ops\tPOST\trailway-staging\t");

    // Upstreams are recorded by their name (which never changes): once removed, its calls still name it
    // and are still found by it.
    const removed = await runCliOnTerminal(["upstream", "rm", "railway-staging", "--yes"], { env });
    expect(removed.code, removed.stdout).toBe(0);
    expect((await broker.admin("get", "/v1/upstreams/railway-staging")).status).toBe(404);
    const [, ...toRemovedUpstream] = await search("--upstream", "railway-staging", "--kind", "proxy");
    expect(toRemovedUpstream).toHaveLength(2);
    for (const row of toRemovedUpstream) expect(row).toContain("\tdeploy-bot\trailway-ops\tPOST\trailway-staging\t/graphql/v2\t");
  });
});
