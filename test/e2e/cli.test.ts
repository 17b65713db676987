import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { cli, emptyHome, runCli } from "../helpers/cli.js";
import { freePort } from "../helpers/pg-cluster.js";
import { issueToken } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Selector revocations cut off at whole seconds of iat: step past the current second. */
const nextSecond = () => sleep(1100 - (Date.now() % 1000));

// The CLI as a user runs it (its own process, stdout a pipe) against a real broker.
// The CLI speaks HTTP to a broker; which database the broker uses is the rest of the suite's concern. It
// runs once, on the embedded default: each of its commands is a process of its own, making it the slowest
// file of the suite, and running it again on PostgreSQL tested nothing new.
describe("keyward CLI", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let env: Record<string, string>;
  let agent: { id: string; clientId: string; clientSecret: string };
  const work = emptyHome();

  const proxied = (token: string, method = "get") =>
    broker.http()[method as "get"]("/proxy/hosting-staging/v1/projects").set("authorization", `Bearer ${token}`);

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    upstream = await startUpstream();
    env = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY };
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("sets up an upstream, an agent and a grant; the agent gets a token that works", async () => {
    // The secret comes from stdin, never a flag.
    await cli(["upstream", "add", "hosting-staging", "--base-url", upstream.url, "--environment", "staging"], { env, input: "first-secret\n" });
    const listed = await cli(["upstream", "list"], { env });
    // Without a TTY a table is tab-separated with a header, for cut and awk.
    expect(listed.split("\n")[0]).toBe("name\tenvironment\tprotocol\tbaseUrl\tauth\tsecretUpdatedAt");
    expect(listed).toContain(`hosting-staging\tstaging\thttp\t${upstream.url}\theader\t`);
    expect(listed).not.toContain("first-secret");

    agent = JSON.parse(await cli(["--json", "agent", "add", "deploy-bot"], { env }));
    expect(agent.clientSecret).toMatch(/^kws_/);
    expect(await cli(["agent", "list"], { env })).toContain(`deploy-bot\t${agent.id}\t${agent.clientId}`);

    await cli(
      ["grant", "add", "deploy-staging", "--upstream", "hosting-staging", "--agent", "deploy-bot", "--method", "get", "--method", "POST", "--path", "/v1/**", "--deny", "DELETE", "--max-ttl", "600"],
      { env },
    );
    const grant = JSON.parse(await cli(["grant", "show", "deploy-staging", "--json"], { env }));
    expect(grant).toMatchObject({ agents: [agent.id], methods: ["GET", "POST"], paths: ["/v1/**"], deny: [{ method: "DELETE" }], maxTtlSeconds: 600 });
    expect(await cli(["grant", "list"], { env })).toContain(`deploy-staging\t${grant.id}\thosting-staging\tGET,POST\t/v1/**\t600`);

    // token issue: credentials from the environment, or the secret on stdin; the token alone on stdout.
    const agentEnv = { KEYWARD_URL: broker.url, KEYWARD_CLIENT_ID: agent.clientId };
    const token = (await cli(["token", "issue", "--grant", "deploy-staging"], { env: { ...agentEnv, KEYWARD_CLIENT_SECRET: agent.clientSecret } })).trim();
    const narrow = JSON.parse(await cli(["token", "issue", "--grant", "deploy-staging", "--method", "GET", "--ttl", "60", "--json"], { env: agentEnv, input: agent.clientSecret }));
    expect(narrow).toMatchObject({ upstream: "hosting-staging", scope: "hosting-staging:GET", grant: "deploy-staging" });
    expect((await proxied(token)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer first-secret");

    const refused = await runCli(["token", "issue", "--grant", "deploy-staging", "--method", "DELETE"], { env: agentEnv, input: agent.clientSecret });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the grant does not allow DELETE \(widening_refused\)/);

    // set-secret from a file; the next call carries it.
    writeFileSync(join(work, "secret.txt"), "second-secret\n");
    await cli(["upstream", "set-secret", "hosting-staging", "--secret-file", join(work, "secret.txt")], { env });
    expect((await proxied(token)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer second-secret");
  }, 180_000);

  it("revokes, works the kill switch, and reads, verifies and exports the audit log", async () => {
    const agentEnv = { KEYWARD_URL: broker.url, KEYWARD_CLIENT_ID: agent.clientId, KEYWARD_CLIENT_SECRET: agent.clientSecret };
    const token = (await cli(["token", "issue", "--grant", "deploy-staging"], { env: agentEnv })).trim();

    const ambiguous = await runCli(["revoke", "--all", "--agent", "deploy-bot"], { env });
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/exactly one of/);
    const revocation = JSON.parse(await cli(["revoke", "--agent", "deploy-bot", "--reason", "task finished", "--json"], { env }));
    expect(revocation).toMatchObject({ selector: "agent", value: agent.id, reason: "task finished" });
    expect((await proxied(token)).body.error.code).toBe("token_revoked");

    expect(await cli(["kill-switch", "engage", "--reason", "drill"], { env })).toMatch(/ENGAGED since .* \(drill\)/);
    expect(JSON.parse(await cli(["--json", "kill-switch", "status"], { env }))).toMatchObject({ engaged: true, reason: "drill" });
    expect(await cli(["kill-switch", "lift"], { env })).toMatch(/not engaged/);

    const tail = (await cli(["audit", "tail", "-n", "3"], { env })).trim().split("\n");
    expect(tail).toHaveLength(3);
    expect(tail[2]!.split("\t")[2]).toBe("kill_switch.lifted"); // oldest first, newest last
    const asJson = (await cli(["audit", "tail", "-n", "2", "--json"], { env })).trim().split("\n").map((l) => JSON.parse(l));
    expect(asJson.map((e) => e.kind)).toEqual(["kill_switch.engaged", "kill_switch.lifted"]);

    const page = JSON.parse(await cli(["audit", "search", "--kind", "revocation.created", "--json"], { env }));
    expect(page.events).toEqual([expect.objectContaining({ kind: "revocation.created", agentId: agent.id, reason: "task finished" })]);
    const denied = await cli(["audit", "search", "--decision", "deny", "--upstream", "hosting-staging"], { env });
    expect(denied).toContain("token_revoked");

    expect(await cli(["audit", "verify"], { env })).toMatch(/^audit chain intact: \d+ events checked/);
    await cli(["audit", "export", "--kind", "proxy", "-o", join(work, "audit.jsonl")], { env });
    const exported = readFileSync(join(work, "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(exported.length).toBeGreaterThanOrEqual(3);
    for (const event of exported) expect(event).toMatchObject({ kind: "proxy", hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(JSON.stringify(exported)).not.toContain("second-secret");
  }, 180_000);

  it("revokes by --jti, --grant and --all", async () => {
    const issue = async () => {
      const res = await issueToken(broker, agent, { grant: "deploy-staging" });
      expect(res.status).toBe(200);
      return res.body as { access_token: string; jti: string };
    };
    const statusOf = async (token: { access_token: string }) => {
      const res = await proxied(token.access_token);
      return res.status === 200 ? 200 : res.body.error.code;
    };
    // Selector revocations cut off at whole seconds of iat: the tokens come from a later second than --agent's.
    await nextSecond();
    const [first, second] = [await issue(), await issue()];
    expect([await statusOf(first), await statusOf(second)]).toEqual([200, 200]);

    // --jti: that token alone.
    const byJti = JSON.parse(await cli(["revoke", "--jti", first.jti, "--reason", "leaked", "--json"], { env }));
    expect(byJti).toMatchObject({ selector: "jti", value: first.jti, reason: "leaked" });
    expect([await statusOf(first), await statusOf(second)]).toEqual(["token_revoked", 200]);

    // --grant, by name: the grant's tokens. Human output (fields), not JSON.
    const grantId = (await broker.admin("get", "/v1/grants")).body.grants.find((g: { name: string }) => g.name === "deploy-staging").id;
    const byGrant = await cli(["revoke", "--grant", "deploy-staging"], { env });
    expect(byGrant).toMatch(new RegExp(`^selector: +grant$`, "m"));
    expect(byGrant).toMatch(new RegExp(`^value: +${grantId}$`, "m"));
    expect(await statusOf(second)).toBe("token_revoked");

    // --all: every token issued so far, whoever it is for.
    await nextSecond();
    const third = await issue();
    expect(await statusOf(third)).toBe(200);
    expect(JSON.parse(await cli(["--json", "revoke", "--all", "--reason", "incident-42"], { env }))).toMatchObject({ selector: "all", reason: "incident-42" });
    expect(await statusOf(third)).toBe("token_revoked");
    await nextSecond();
    expect(await statusOf(await issue())).toBe(200);
  }, 180_000);

  it("reads the broker and admin key from ~/.config/keyward/config.json; says what is wrong", async () => {
    const home = emptyHome();
    mkdirSync(join(home, ".config/keyward"), { recursive: true });
    const config = join(home, ".config/keyward/config.json");
    writeFileSync(config, JSON.stringify({ url: broker.url, adminKey: TEST_ADMIN_KEY }));
    chmodSync(config, 0o600);
    const created = JSON.parse(await cli(["admin-key", "create", "--name", "prometheus", "--role", "auditor", "--json"], { env: { HOME: home } }));
    expect(created).toMatchObject({ role: "auditor", key: expect.stringMatching(/^kwa_/) });
    expect(await cli(["admin-key", "list"], { env: { HOME: home } })).toContain("prometheus\tauditor");

    // An auditor key reads the audit log but may not manage.
    const auditor = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: created.key };
    expect((await runCli(["audit", "verify"], { env: auditor })).code).toBe(0);
    const forbidden = await runCli(["agent", "list"], { env: auditor });
    expect(forbidden).toMatchObject({ code: 1, stderr: expect.stringMatching(/role auditor may not manage \(forbidden\)/) });

    const noKey = await runCli(["agent", "list"], { env: { KEYWARD_URL: broker.url } });
    expect(noKey).toMatchObject({ code: 1, stderr: expect.stringMatching(/no admin key: set KEYWARD_ADMIN_KEY/) });
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await runCli(["agent", "list"], { env: { KEYWARD_URL: nobody, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY } });
    expect(unreachable).toMatchObject({ code: 1, stderr: expect.stringContaining(`cannot reach the broker at ${nobody}: connect ECONNREFUSED`) });
    const invalid = await runCli(["grant", "add", "bad", "--upstream", "hosting-staging", "--path", "no-slash"], { env });
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/validation_failed/);
  }, 180_000);

  // Every command's help and its examples: test/unit/cli/help.test.ts, in process.
  it("removes grants, agents and upstreams; help is printed by the command itself", async () => {
    await cli(["grant", "rm", "deploy-staging"], { env });
    await cli(["agent", "rm", "deploy-bot"], { env });
    await cli(["upstream", "rm", "hosting-staging"], { env });
    expect(JSON.parse(await cli(["--json", "upstream", "list"], { env }))).toEqual({ upstreams: [] });
    expect(JSON.parse(await cli(["--json", "agent", "list"], { env }))).toEqual({ agents: [] });

    expect(await cli(["grant", "add", "--help"])).toMatch(/Examples:\n {2}\$ keyward grant add /);
  }, 180_000);
});
