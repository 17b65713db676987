import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { runCliOnTerminalAnswering } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "./cases.js";

/** A secret given to the CLI at its prompt, as docs/cli.md says to (never a flag): what the terminal shows of it. */
describe(title("SEC-26"), () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    env = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: broker.adminKey };
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "the-first-secret-0000" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("upstream set-secret: the secret typed at the prompt is not echoed, and is the one stored", async () => {
    const typed = "sk_live_TYPED_AT_THE_PROMPT_4242";
    const shown = await runCliOnTerminalAnswering(["upstream", "set-secret", "api"], { env, prompt: "upstream secret", typed: `${typed}\n\u0004` });
    expect(shown.code, shown.stdout).toBe(0);
    expect(shown.stdout).toContain("secret of api replaced");
    expect(shown.stdout).not.toContain("TYPED_AT_THE_PROMPT");

    const agent = await createAgent(broker, "reader");
    await createGrant(broker, { name: "read", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const token = await tokenFor(broker, agent, { grant: "read" });
    expect((await broker.http().get("/proxy/api/v1/x").set("authorization", `Bearer ${token}`)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${typed}`);
  }, 60_000);

  it("Ctrl-C at the prompt sends nothing and gives the terminal its echo back", async () => {
    const before = (await broker.admin("get", "/v1/upstreams/api")).body.secret.updatedAt;
    const shown = await runCliOnTerminalAnswering(["upstream", "set-secret", "api"], {
      env,
      prompt: "upstream secret",
      typed: "sk_live_half_typed\u0003",
      then: 'echo "exit $?"; stty -a | tr " " "\\n" | grep -x -e echo -e -echo',
    });
    expect(shown.stdout, JSON.stringify(shown.stdout)).toContain("exit 130");
    expect(shown.stdout).toMatch(/^echo\r?$/m);
    expect(shown.stdout).not.toContain("sk_live_half_typed");
    expect((await broker.admin("get", "/v1/upstreams/api")).body.secret.updatedAt).toBe(before);
  }, 60_000);

  it("token issue: the client secret typed at the prompt is not echoed", async () => {
    const agent = await createAgent(broker, "typist");
    await createGrant(broker, { name: "typed", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const shown = await runCliOnTerminalAnswering(["token", "issue", "--grant", "typed", "--client-id", agent.clientId], {
      env: { KEYWARD_URL: broker.url },
      prompt: "client secret",
      typed: `${agent.clientSecret}\n\u0004`,
    });
    expect(shown.code, shown.stdout).toBe(0);
    expect(shown.stdout).toMatch(/eyJ/); // the token it printed
    expect(shown.stdout).not.toContain(agent.clientSecret);
  }, 60_000);
});
