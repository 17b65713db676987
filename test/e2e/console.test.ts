import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIST } from "../../src/console/plugin.js";
import { CHROMIUM, noChromium, openChromium } from "../helpers/browser.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { basic, createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";

/** With UPDATE_SCREENSHOTS=1 each view is saved under docs/screenshots/ (shown in docs/console.md). */
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS ? join(import.meta.dirname, "../../docs/screenshots") : null;
const VIEWPORT = { width: 1366, height: 768 };
/** The browser's zone, and its offset (India's, the same all year): times must be shown with it. */
const TIME_ZONE = { id: "Asia/Kolkata", offset: "+05:30" };

const skip = noChromium;
if (skip) console.warn(`console browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set KEYWARD_CHROMIUM)`);

describe.skipIf(skip)("security console in a real browser", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let browser: Awaited<ReturnType<typeof openChromium>>;
  let page: Page;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let reportBot: Awaited<ReturnType<typeof createAgent>>;
  let keys: { security: string; auditor: string };
  let revokedToken: string;
  /** Script errors and Content-Security-Policy violations: there must be none. */
  const pageProblems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(CONSOLE_DIST, "index.html"))) throw new Error("console/dist is missing: run `npm run build:console`");
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: "console-test-upstream-secret" });
    agent = await createAgent(broker, "deploy-bot");
    reportBot = await createAgent(broker, "report-bot");
    const keyOf = async (role: string) => (await broker.admin("post", "/v1/admin-keys", { name: `${role}-on-call`, role })).body.key as string;
    keys = { security: await keyOf("security"), auditor: await keyOf("auditor") };

    browser = await openChromium({ viewport: VIEWPORT, timezoneId: TIME_ZONE.id });
    ({ page } = browser);
    page.on("pageerror", (err) => pageProblems.push(err.message));
    page.on("console", (message) => {
      if (/Content.Security.Policy|Refused to/i.test(message.text())) pageProblems.push(message.text());
    });
    if (SCREENSHOTS) mkdirSync(SCREENSHOTS, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const screenshot = async (name: string) => {
    if (!SCREENSHOTS) return;
    // The status bar's passing messages are left out: they would cover the view. (Through the DOM: the
    // console's Content-Security-Policy refuses the <style> element Playwright's `style` option would add.)
    const statusBar = page.locator(".status-bar");
    const show = (visibility: string) => statusBar.evaluateAll((bars, v) => bars.forEach((bar) => ((bar as HTMLElement).style.visibility = v)), visibility);
    await show("hidden");
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
    await show("");
  };
  const open = async (section: string) => {
    await page.getByRole("navigation", { name: "Console sections" }).getByRole("link", { name: section }).click();
    await page.getByRole("heading", { level: 1, name: section }).waitFor();
  };
  const signIn = async (key: string) => {
    await page.goto(`${broker.url}/console/`);
    await page.getByLabel("Admin key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  };
  const signOut = () => page.getByRole("button", { name: "Sign out" }).click();
  const sections = () => page.getByRole("navigation", { name: "Console sections" }).getByRole("link").allTextContents();
  /** Every proxied call this test makes, by outcome: the activity chart must show them all. */
  const calls = { allowed: 0, denied: 0 };
  const proxied = async (token: string) => {
    const res = await fetch(`${broker.url}/proxy/hosting-staging/v1/projects`, { headers: { authorization: `Bearer ${token}` } });
    calls[res.ok ? "allowed" : "denied"]++;
    return res;
  };
  /** The proxied call's status, or when refused its status, error code and message. */
  const outcome = async (token: string) => {
    const res = await proxied(token);
    if (res.ok) return res.status;
    const { error } = await res.json();
    return `${res.status} ${error.code}: ${error.message}`;
  };

  it("signs in with an admin key, kept in this tab only, and shows every section to an admin", async () => {
    await page.goto(`${broker.url}/console/`);
    await screenshot("sign-in");
    // By keyboard alone: the key field is the first stop, Enter submits.
    await page.keyboard.press("Tab");
    await page.keyboard.type(broker.adminKey);
    await page.keyboard.press("Enter");
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    expect(await sections()).toEqual(["Live tokens", "Kill switch", "Approvals", "Audit log", "Grants", "Agents", "Upstreams"]);
    expect(page.url()).not.toContain(broker.adminKey);
    const storage = await page.evaluate(() => ({ local: localStorage.length, session: Object.values(sessionStorage) }));
    expect(storage).toEqual({ local: 0, session: [broker.adminKey] });
    // A reload keeps the session (sessionStorage), without asking again.
    await page.reload();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  });

  it("creates a grant from the form and shows its rules in words", async () => {
    await open("Grants");
    await page.getByLabel("Name", { exact: true }).fill("deploy-staging");
    await page.getByRole("group", { name: "Agents" }).getByLabel("deploy-bot").check();
    await page.getByRole("group", { name: "Allowed methods" }).getByLabel("POST").check();
    await page.getByLabel("Paths, one per line").fill("/v1/**");
    await page.getByRole("button", { name: "Create grant" }).click();
    const card = page.getByRole("listitem").filter({ has: page.getByRole("heading", { name: "deploy-staging" }) });
    await card.waitFor();
    const text = await card.innerText();
    expect(text).toContain("GET, POST on /v1/**");
    expect(text).toContain("DELETE anywhere");
    expect(text).toContain("deploy-bot");
    expect(text).toContain("at most 15 min");

    const simulate = async (method: string, path: string, expected: RegExp) => {
      await page.getByLabel("Method").selectOption(method);
      await page.getByLabel(/^Path on/).fill(path);
      await page.getByRole("button", { name: "Simulate" }).click();
      await page.getByRole("status").filter({ hasText: expected }).waitFor();
    };
    await simulate("GET", "/v1/projects", /^Allowed by GET \/v1\/\*\*/);
    await simulate("DELETE", "/v1/volumes/vol-1", /^Denied \(method_not_granted\): the token does not allow DELETE/);
    await screenshot("grants");
  });

  it("shows the agent's token once it has one, with its calls, and revokes it: the next call is refused", async () => {
    const token = await tokenFor(broker, agent, { grant: "deploy-staging" });
    expect((await proxied(token)).status).toBe(200);
    await open("Live tokens");
    const row = page.getByRole("row").filter({ hasText: "deploy-bot" });
    await row.waitFor();
    expect(await row.innerText()).toMatch(/deploy-bot\s+deploy-staging\s+hosting-staging\s+staging\s+1\d:\d\d\s+1\b/);
    await screenshot("tokens");

    await row.getByRole("button", { name: /^Revoke token/ }).click();
    const dialog = page.getByRole("dialog", { name: /^Revoke token/ });
    await dialog.getByLabel(/^Reason/).fill("leaked in a CI log");
    await dialog.getByRole("button", { name: "Revoke", exact: true }).click();
    await row.waitFor({ state: "detached" });
    await page.getByRole("status").filter({ hasText: "Revoked token" }).waitFor();

    const refused = await proxied(token);
    expect(refused.status).toBe(401);
    expect((await refused.json()).error.code).toBe("token_revoked");
    expect(upstream.received).toHaveLength(1);
    revokedToken = token;
  });

  it("shows the revocation and the refused call in the audit log, new events arriving live", async () => {
    await open("Audit log");
    const revocation = page.getByRole("row").filter({ hasText: "revocation.created" });
    await revocation.waitFor();
    expect(await revocation.innerText()).toContain("leaked in a CI log");
    await page.getByText("Live: new events appear at the top").waitFor();
    await page.locator(".chain-ok").filter({ hasText: /^Intact: \d+ events checked/ }).waitFor();

    // The agent tries again while the page is open: the denial arrives through the live tail.
    expect((await proxied(revokedToken)).status).toBe(401);
    await page.locator("tr.fresh").filter({ hasText: "token_revoked" }).waitFor();
    await screenshot("audit");

    await page.getByLabel("Decision").selectOption("deny");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].every((tr) => tr.textContent?.includes("deny")));
  });

  it("lists agents and upstreams, never showing a secret", async () => {
    await open("Agents");
    await page.getByRole("row").filter({ hasText: "report-bot" }).waitFor();
    expect(await page.getByRole("row").filter({ hasText: "deploy-bot" }).innerText()).toContain("deploy-staging");
    await screenshot("agents");
    await open("Upstreams");
    const row = page.getByRole("row").filter({ hasText: "hosting-staging" });
    await row.waitFor();
    expect(await row.innerText()).toMatch(/set, last rotated .* ago|set, last rotated now/);
    expect(await page.content()).not.toContain("console-test-upstream-secret");
    await screenshot("upstreams");
  });

  it("revokes every token of an agent, then of a grant, from the bulk forms: only those tokens are refused", async () => {
    const grantOf = (name: string, agents: string[]) =>
      createGrant(broker, { name, agents, upstream: "hosting-staging", methods: ["GET"], paths: ["/v1/**"] });
    await grantOf("reports", [agent.id, reportBot.id]);
    await grantOf("metrics", [reportBot.id]);
    const deployStaging = await tokenFor(broker, agent, { grant: "deploy-staging" });
    const deployReports = await tokenFor(broker, agent, { grant: "reports" });
    const reportReports = await tokenFor(broker, reportBot, { grant: "reports" });
    const reportMetrics = await tokenFor(broker, reportBot, { grant: "metrics" });

    await open("Live tokens");
    const rows = page.locator("tbody tr");
    await rows.filter({ hasText: "metrics" }).waitFor();
    expect(await rows.count()).toBe(4);
    const bulk = page.getByRole("region", { name: "Bulk revoke" });
    const revokeAll = async (form: string, choice: string, reason: string) => {
      await bulk.getByLabel(form).selectOption({ label: choice });
      await bulk.locator("form").filter({ has: page.getByLabel(form) }).getByRole("button", { name: "Revoke all" }).click();
      const what = `every token of ${form === "All tokens of agent" ? "agent" : "grant"} ${choice}`;
      const dialog = page.getByRole("dialog", { name: `Revoke ${what}?` });
      await dialog.getByLabel(/^Reason/).fill(reason);
      await dialog.getByRole("button", { name: "Revoke", exact: true }).click();
      await dialog.waitFor({ state: "detached" });
      await page.getByRole("status").filter({ hasText: `Revoked ${what}.` }).waitFor();
    };

    // By agent: both of deploy-bot's tokens, whatever their grant; report-bot's are untouched.
    await revokeAll("All tokens of agent", "deploy-bot", "deploy-bot compromised");
    await rows.filter({ hasText: "deploy-bot" }).first().waitFor({ state: "detached" });
    expect(await rows.count()).toBe(2);
    expect(await outcome(deployStaging)).toBe("401 token_revoked: agent's tokens revoked");
    expect(await outcome(deployReports)).toBe("401 token_revoked: agent's tokens revoked");
    expect(await outcome(reportReports)).toBe(200);

    // By grant (not the one the form offers first): report-bot's token under "reports" goes, its "metrics" one stays.
    expect(await bulk.getByLabel("All tokens of grant").locator("option").allTextContents()).toEqual(["metrics", "reports"]);
    await revokeAll("All tokens of grant", "reports", "reports grant withdrawn");
    await rows.filter({ hasText: "reports" }).waitFor({ state: "detached" });
    expect(await rows.allInnerTexts()).toEqual([expect.stringMatching(/^report-bot\s+metrics\s+hosting-staging/)]);
    expect(await outcome(reportReports)).toBe("401 token_revoked: grant's tokens revoked");
    expect(await outcome(reportMetrics)).toBe(200);

    // Both revocations are in the audit log, with their reasons.
    await open("Audit log");
    const revocations = page.getByRole("row").filter({ hasText: "revocation.created" });
    await revocations.filter({ hasText: "deploy-bot compromised" }).waitFor();
    await revocations.filter({ hasText: "reports grant withdrawn" }).waitFor();
  });

  it("charts this run's proxied calls and denials per minute, with the counts in its accessible name", async () => {
    // Still on the audit log, opened after the last call: the chart loaded every call so far.
    expect(calls.allowed).toBeGreaterThan(0);
    expect(calls.denied).toBeGreaterThan(0);
    const summary = new RegExp(`^Last 60 minutes: ${calls.allowed + calls.denied} proxied calls, ${calls.denied} denied; at most \\d+ in a minute\\.$`);
    const chart = page.getByRole("figure").getByRole("img", { name: summary });
    await chart.waitFor();
    expect(await page.getByRole("figure").locator("p").innerText()).toMatch(summary);
    // One bar per minute; the bars' own labels add up to the same counts, and some are drawn.
    const bars = await chart.locator("g > title").allTextContents();
    expect(bars).toHaveLength(60);
    const sum = (re: RegExp) => bars.reduce((n, title) => n + Number(re.exec(title)![1]), 0);
    expect({ allowed: sum(/(\d+) allowed/), denied: sum(/(\d+) denied/) }).toEqual(calls);
    expect(await chart.locator("rect.allowed").count()).toBeGreaterThan(0);
    expect(await chart.locator("rect.denied").count()).toBeGreaterThan(0);
    expect((await chart.boundingBox())!.width).toBeGreaterThan(300);
  });

  it("denies a held request: the agent's poll reports denied, and no token is issued", async () => {
    await createGrant(broker, {
      name: "prod-restore",
      agents: [agent.id],
      upstream: "hosting-staging",
      methods: ["POST"],
      paths: ["/v1/volumes/*/restore"],
      requiresApproval: true,
    });
    const held = await issueToken(broker, agent, { grant: "prod-restore", ttlSeconds: 300 });
    expect(held.status).toBe(202);
    const poll = () => broker.http().get(`/v1/approvals/${held.body.approvalId}`).set("authorization", basic(agent.clientId, agent.clientSecret));
    expect((await poll()).body).toMatchObject({ status: "pending" });

    await open("Approvals");
    const card = page.getByRole("listitem").filter({ hasText: "deploy-bot → prod-restore" });
    await card.getByRole("button", { name: "Deny" }).click();
    const dialog = page.getByRole("dialog", { name: "Deny deploy-bot's request?" });
    await dialog.getByLabel(/^Note/).fill("no restores during the freeze");
    await dialog.getByRole("button", { name: "Deny" }).click();
    await page.getByRole("status").filter({ hasText: "Denied deploy-bot's request." }).waitFor();
    await page.getByText("No pending requests.").waitFor();
    await page.getByLabel("Show").selectOption("denied");
    expect(await card.innerText()).toMatch(/denied[\s\S]*Decided by[\s\S]*“no restores during the freeze”/);

    // The agent asks again, twice: denied, and no token either time.
    for (const polled of [await poll(), await poll()]) {
      expect(polled.status).toBe(200);
      expect(polled.body).toMatchObject({ status: "denied" });
      expect(polled.body).not.toHaveProperty("token");
    }
    const live = (await broker.admin("get", "/v1/tokens")).body.tokens as { grant: { name: string } }[];
    expect(live.filter((token) => token.grant.name === "prod-restore")).toEqual([]);
  });

  it("names a deleted agent and grant in the audit log, with the operations each call ran, times with their zone, and filters by refusal code", async () => {
    const railway = await startGraphqlUpstream();
    try {
      await createUpstream(broker, { name: "railway-staging", baseUrl: railway.url, environment: "staging", secret: "console-test-graphql-secret", protocol: "graphql" });
      const cleanupBot = await createAgent(broker, "cleanup-bot");
      const grant = await createGrant(broker, {
        name: "railway-cleanup",
        agents: [cleanupBot.id],
        upstream: "railway-staging",
        methods: ["POST"],
        paths: ["/graphql/v2"],
        graphql: { allow: [{ operation: "query" }, { operation: "mutation" }], deny: [{ field: "volumeDelete" }] },
      });
      const token = await tokenFor(broker, cleanupBot, { grant: "railway-cleanup" });
      const graphql = (query: string) =>
        fetch(`${broker.url}/proxy/railway-staging/graphql/v2`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ query }) });
      expect((await graphql('mutation { a: serviceCreate(name: "web") { id } b: serviceCreate(name: "worker") { id } }')).status).toBe(200);
      expect((await graphql('mutation { volumeDelete(volumeId: "vol-1") }')).status).toBe(403);
      // The calls' events reach the database up to a linger after the calls (src/audit/log.ts), while the
      // deletions below commit theirs directly: a read of the log waits for this broker's own events first,
      // so that the chain has the calls before the deletions, as the list below expects.
      expect((await broker.admin("get", "/v1/audit?limit=1")).status).toBe(200);
      // Gone from the broker: the events still say who and under what.
      expect((await broker.admin("delete", `/v1/grants/${grant.id}`)).status).toBe(204);
      expect((await broker.admin("delete", `/v1/agents/${cleanupBot.id}`)).status).toBe(204);
    } finally {
      await railway.close();
    }

    await open("Audit log");
    const rows = page.locator("tbody tr");
    const allowed = rows.filter({ hasText: "mutation serviceCreate ×2" });
    await allowed.waitFor();
    const cells = await allowed.locator("td").allInnerTexts();
    // #, time, event, actor, agent and grant, request, decision, reason
    expect(cells.slice(2, 5)).toEqual(["proxy", "cleanup-bot", "cleanup-bot\nrailway-cleanup"]);
    expect(cells[1]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\${TIME_ZONE.offset}$`));
    const time = allowed.locator("time");
    const at = (await time.getAttribute("datetime"))!;
    // The same instant, in UTC to the millisecond as recorded, on hover.
    expect(await time.getAttribute("title")).toBe(at);
    expect(Date.parse(cells[1]!)).toBe(Math.floor(Date.parse(at) / 1000) * 1000);

    await page.getByLabel("Refusal code").selectOption("deny_rule");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => {
      const shown = [...document.querySelectorAll("tbody tr")];
      return shown.length === 1 && shown[0]!.textContent!.includes("deny_rule");
    });
    const refused = await rows.first().innerText();
    expect(refused).toMatch(/cleanup-bot\s+cleanup-bot\s+railway-cleanup\s+POST railway-staging \/graphql\/v2 → 403\s+deny\s+deny_rule/);
    expect(refused).toContain("volumeDelete");

    // By the agent's name, which only the events still hold.
    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("Agent name").fill("cleanup-bot");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].every((tr) => tr.textContent!.includes("cleanup-bot")));
    // Created, issued to, two calls (one with its response), deleted (and its tokens revoked with it).
    expect(await rows.locator("td:nth-child(3)").allInnerTexts()).toEqual([
      "revocation.created",
      "admin.change",
      "proxy",
      "proxy.response",
      "proxy",
      "token.issued",
      "admin.change",
    ]);
    await page.getByRole("button", { name: "Clear" }).click();
  });

  it("lets a security key approve a held request, but not manage, and not lift the kill switch", async () => {
    await broker.admin("post", "/v1/grants", {
      name: "restore-drill",
      agents: [agent.id],
      upstream: "hosting-staging",
      methods: ["POST"],
      paths: ["/v1/volumes/*/restore"],
      requiresApproval: true,
    });
    const held = await issueToken(broker, agent, { grant: "restore-drill", ttlSeconds: 300 });
    expect(held.status).toBe(202);

    await signOut();
    await signIn(keys.security);
    expect(await sections()).toEqual(["Live tokens", "Kill switch", "Approvals", "Audit log"]);
    await open("Approvals");
    const card = page.getByRole("listitem").filter({ hasText: "deploy-bot → restore-drill" });
    await card.waitFor();
    await screenshot("approvals");
    await card.getByRole("button", { name: "Approve" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(/^Note/).fill("restore drill, ticket OPS-42");
    await dialog.getByRole("button", { name: "Approve" }).click();
    await page.getByText("No pending requests.").waitFor();
    const approval = (await broker.admin("get", "/v1/approvals")).body.approvals[0];
    expect(approval).toMatchObject({ status: "approved", note: "restore drill, ticket OPS-42" });

    await open("Kill switch");
    const engageButton = page.getByRole("button", { name: "Engage kill switch" });
    await engageButton.click();
    const confirm = page.getByRole("dialog", { name: "Engage the kill switch?" });
    // Escape cancels, and focus returns to the button.
    await confirm.waitFor();
    await page.keyboard.press("Escape");
    await confirm.waitFor({ state: "detached" });
    // Focus goes back once the dialog's effects have run, which a loaded machine can show a moment after it is gone.
    await waitFor(() => engageButton.evaluate((button) => button === document.activeElement), 2_000, "focus back on the button");
    await page.keyboard.press("Enter");
    const engage = confirm.getByRole("button", { name: "Engage kill switch" });
    expect(await engage.isDisabled()).toBe(true);
    await screenshot("kill-switch-confirm");
    await confirm.getByLabel(/^Type ENGAGE/).fill("engage");
    await confirm.getByLabel(/^Reason/).fill("incident drill");
    await engage.click();
    await page.getByRole("heading", { name: "Engaged: every agent token is frozen" }).waitFor();
    await page.getByRole("link", { name: "Kill switch engaged" }).waitFor();
    expect(await page.getByRole("button", { name: "Lift kill switch" }).count()).toBe(0);
    await page.getByText("Only an admin may lift it").waitFor();
    await screenshot("kill-switch");
    const frozen = await proxied(await tokenFor(broker, agent, { grant: "deploy-staging" }));
    expect(frozen.status).toBe(403);
    expect((await frozen.json()).error.code).toBe("kill_switch_engaged");
  });

  it("lets an admin lift the kill switch, and shows an auditor the audit log only", async () => {
    await signOut();
    await signIn(broker.adminKey);
    await open("Kill switch");
    await page.getByRole("button", { name: "Lift kill switch" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Lift kill switch" }).click();
    await page.getByRole("heading", { name: "Off: agent tokens work normally" }).waitFor();
    expect((await proxied(await tokenFor(broker, agent, { grant: "deploy-staging" }))).status).toBe(200);

    await signOut();
    await signIn(keys.auditor);
    expect(await sections()).toEqual(["Audit log"]);
    await page.getByRole("heading", { level: 1, name: "Audit log" }).waitFor();
  });

  it("signs out at once when the key is revoked", async () => {
    const auditorKeyId = ((await broker.admin("get", "/v1/admin-keys")).body.adminKeys as { id: string; role: string }[]).find((k) => k.role === "auditor")!.id;
    expect((await broker.admin("delete", `/v1/admin-keys/${auditorKeyId}`)).status).toBe(204);
    // A request made now is refused, and the console signs out. Its own refresh of the audit log may get
    // there first (one CI run: the button was gone before the click): then there is nothing to click.
    const applied = page.getByRole("button", { name: "Apply filters" }).click().catch(() => "signed out before the click");
    await page.getByText("Your key is no longer accepted").waitFor();
    await applied;
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it("ran without a script error or a Content-Security-Policy violation", () => {
    expect(pageProblems).toEqual([]);
  });
});
