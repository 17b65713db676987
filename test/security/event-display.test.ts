import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIST } from "../../src/console/plugin.js";
import { noChromium, openChromium } from "../helpers/browser.js";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { runCliOnTerminal } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { title } from "./cases.js";

/**
 * What a person reads of an event an agent made: its path and its JSON-RPC method names are the agent's
 * bytes, stored as sent, and may hold bidi controls (U+202E reverses what follows it on the line) or
 * zero-width characters (`ad<U+200B>min` reads as `admin`). `keyward audit` and the console show them
 * escaped (src/audit/event-text.ts visibleText).
 */
const BIDI_OR_INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]/;

describe(`${title("REQ-40")}: keyward audit`, () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  let rpcToken: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    await createUpstream(broker, { name: "files", baseUrl: upstream.url, environment: "staging", secret: "attack3-upstream-secret" });
    const agent = await createAgent(broker, "uploader");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "files", methods: ["GET", "PUT"], paths: ["/v1/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
    await createUpstream(broker, { name: "chain", baseUrl: upstream.url, environment: "staging", secret: "attack3-upstream-secret", protocol: "jsonrpc" });
    await createGrant(broker, { name: "rpc", agents: [agent.id], upstream: "chain", methods: ["POST"], paths: ["/"], jsonrpc: { allow: [{ method: "eth_*" }] } });
    rpcToken = await tokenFor(broker, agent, { grant: "rpc" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("does not print U+202E from a proxied path to the terminal", async () => {
    // The agent's request: PUT /proxy/files/v1/files/invoice%E2%80%AEfdp.exe
    // Stored path: /v1/files/invoice\u202efdp.exe; on a bidi terminal it reads "/v1/files/invoiceexe.pdf"
    // (and everything after it on the line, status and reason, is shown reversed too).
    const res = await broker.http().put("/proxy/files/v1/files/invoice%E2%80%AEfdp.exe").set("authorization", `Bearer ${token}`).send("x");
    expect(res.status).toBe(200); // allowed and forwarded: nothing refuses the character

    const shown = await runCliOnTerminal(["audit", "search", "--upstream", "files", "--kind", "proxy"], {
      env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY },
    });
    expect(shown.code).toBe(0);
    // What a person should read: the control made visible, not applied.
    expect(shown.stdout).toContain("/v1/files/invoice\\u202efdp.exe");
    expect(shown.stdout).not.toMatch(BIDI_OR_INVISIBLE);
  }, 120_000);

  it("does not print a zero-width space hidden inside a path segment", async () => {
    // The agent's request: GET /proxy/files/v1/ad%E2%80%8Bmin/users — shown as "/v1/admin/users".
    const res = await broker.http().get("/proxy/files/v1/ad%E2%80%8Bmin/users").set("authorization", `Bearer ${token}`);
    expect(res.status).toBe(200);
    const shown = await runCliOnTerminal(["audit", "tail", "-n", "1", "--upstream", "files"], {
      env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY },
    });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("/v1/ad\\u200bmin/users");
    expect(shown.stdout).not.toMatch(BIDI_OR_INVISIBLE);
  }, 120_000);

  it("does not print U+202E from a JSON-RPC method name (details.operations) to the terminal", async () => {
    // The agent's request: POST /proxy/chain/ {"jsonrpc":"2.0","method":"eth_\u202ellaCteg","id":1}
    // Allowed by eth_*; on a bidi terminal the operations column reads "chain.eth_getCall" and the status and
    // reason printed after it on the line are reversed too.
    const res = await broker
      .http()
      .post("/proxy/chain/")
      .set("authorization", `Bearer ${rpcToken}`)
      .set("content-type", "application/json")
      .send(String.raw`{"jsonrpc":"2.0","method":"eth_\u202ellaCteg","id":1}`);
    expect(res.status).toBe(200);
    const shown = await runCliOnTerminal(["audit", "tail", "-n", "1", "--upstream", "chain", "--kind", "proxy"], {
      env: { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY },
    });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("llaCteg");
    expect(shown.stdout).not.toMatch(BIDI_OR_INVISIBLE);
  }, 120_000);
});

describe.skipIf(noChromium)(`${title("REQ-40")}: the console`, () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let browser: Awaited<ReturnType<typeof openChromium>>;
  let page: Page;
  let token: string;

  beforeAll(async () => {
    if (!existsSync(join(CONSOLE_DIST, "index.html"))) throw new Error("console/dist is missing: run `npm run build:console`");
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    await createUpstream(broker, { name: "files", baseUrl: upstream.url, environment: "staging", secret: "attack3-console-secret" });
    const agent = await createAgent(broker, "uploader");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "files", methods: ["PUT"], paths: ["/v1/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
    browser = await openChromium({ viewport: { width: 1920, height: 900 } });
    ({ page } = browser);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it("shows the Request cell in the order the agent's path was recorded", async () => {
    // The agent's request: PUT /proxy/files/v1/files/invoice%E2%80%AEfdp.exe  (recorded path /v1/files/invoice\u202efdp.exe)
    const res = await fetch(`${broker.url}/proxy/files/v1/files/invoice%E2%80%AEfdp.exe`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body: "x" });
    expect(res.status).toBe(200);

    await page.goto(`${broker.url}/console/`);
    await page.getByLabel("Admin key").fill(broker.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await page.getByRole("navigation", { name: "Console sections" }).getByRole("link", { name: "Audit log" }).click();
    const code = page.locator("table.audit code", { hasText: "invoice" }).first();
    await code.waitFor();

    // What a person reads: the Request cell's characters in their on-screen order (left to right), against
    // the order they are recorded in, both without the invisible controls themselves.
    const { logical, visual } = await code.evaluate((el) => {
      const cell = el.closest("td")!;
      const chars: { ch: string; x: number; y: number }[] = [];
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.textContent ?? "";
        for (let i = 0; i < text.length; i++) {
          if (/[\s\u200b-\u200f\u202a-\u202e\u2066-\u2069]/.test(text[i]!)) continue;
          const range = document.createRange();
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          const rect = range.getBoundingClientRect();
          // A glyph's middle: the path's monospace glyphs and the text around them have different tops on one line.
          chars.push({ ch: text[i]!, x: rect.left, y: rect.top + rect.height / 2 });
        }
      }
      const logical = chars.map((c) => c.ch).join("");
      // Lines, top to bottom: a glyph more than 6 px below the previous one starts the next line.
      const byHeight = [...chars].sort((a, b) => a.y - b.y);
      const line = new Map<(typeof chars)[number], number>();
      byHeight.forEach((c, i) => line.set(c, i === 0 ? 0 : line.get(byHeight[i - 1]!)! + (c.y - byHeight[i - 1]!.y > 6 ? 1 : 0)));
      const visual = [...chars].sort((a, b) => line.get(a)! - line.get(b)! || a.x - b.x).map((c) => c.ch).join("");
      return { logical, visual };
    });
    // Before the fix a person saw "PUT files /v1/files/invoice002 → exe.pdf" (the status 200 as part of the
    // path, the file as "exe.pdf"); recorded: "PUT files /v1/files/invoice\u202efdp.exe → 200".
    expect(visual).toBe(logical);
    expect(await code.textContent()).toBe("/v1/files/invoice\\u202efdp.exe");
  }, 60_000);
});

describe.skipIf(noChromium)(`${title("ADM-36")}: the console`, () => {
  let store: Store;
  let broker: TestBroker;
  let browser: Awaited<ReturnType<typeof openChromium>>;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(join(CONSOLE_DIST, "index.html"))) throw new Error("console/dist is missing: run `npm run build:console`");
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    browser = await openChromium({ viewport: { width: 1920, height: 900 } });
    ({ page } = browser);
  }, 60_000);

  afterAll(async () => {
    await broker?.close();
    await browser?.close();
    await store?.drop();
  });

  it("shows a kill-switch reason and an agent's description with their bidi controls visible", async () => {
    // A security key's reason, and an admin's description: on screen, "drill\u202eeton" would read "drillnote".
    expect((await broker.admin("post", "/v1/agents", { name: "described", description: "deploys\u202elanigiro" })).status).toBe(201);
    expect((await broker.admin("post", "/v1/kill-switch", { reason: "drill\u202eeton" })).status).toBe(201);

    await page.goto(`${broker.url}/console/`);
    await page.getByLabel("Admin key").fill(broker.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    const nav = page.getByRole("navigation", { name: "Console sections" });
    await nav.getByRole("link", { name: "Kill switch", exact: true }).click();
    await page.getByText("drill", { exact: false }).first().waitFor();
    const killSwitch = await page.locator("main").textContent();
    // Before the fix: the reason as stored, U+202E applied by the browser.
    expect(killSwitch).toContain("drill\\u202eeton");
    expect(killSwitch).not.toMatch(BIDI_OR_INVISIBLE);

    await nav.getByRole("link", { name: "Agents" }).click();
    await page.getByText("described").first().waitFor();
    const agents = await page.locator("main").textContent();
    expect(agents).toContain("deploys\\u202elanigiro");
    expect(agents).not.toMatch(BIDI_OR_INVISIBLE);
  }, 60_000);
});
