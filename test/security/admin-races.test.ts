import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUpstream } from "../helpers/scenario.js";
import { Vault } from "../../src/vault/vault.js";
import { secretContext } from "../../src/upstreams/upstreams.js";
import { statusOf, title } from "./cases.js";
import { assertNoSecretLeaks, startScenario, type Scenario } from "./harness.js";

/** Admin writes that race each other on one name or one row: each applied whole, or refused with a 4xx. */
describe("security: concurrent admin writes", () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario();
  });

  afterAll(async () => {
    await s?.close();
  });

  const statuses = (responses: { status: number }[]) => responses.map((r) => s.record(r as never) && r.status).sort();

  it(title("ADM-14"), async () => {
    const p = s.broker.keyward.db.prisma;
    const AT_ONCE = 6;
    for (let round = 0; round < 3; round++) {
      const upstream = `race-u${round}`;
      const grant = `race-g${round}`;
      const agent = `race-a${round}`;
      const creates = {
        upstream: () =>
          s.broker.admin("post", "/v1/upstreams", { name: upstream, baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "race-secret" }),
        grant: () => s.broker.admin("post", "/v1/grants", { name: grant, agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] }),
        agent: () => s.broker.admin("post", "/v1/agents", { name: agent }),
      };
      for (const [kind, create] of Object.entries(creates)) {
        const responses = await Promise.all(Array.from({ length: AT_ONCE }, create));
        expect(statuses(responses), `${kind} ${round}`).toEqual([201, ...Array(AT_ONCE - 1).fill(statusOf("ADM-14"))]);
        for (const res of responses.filter((r) => r.status !== 201)) expect(res.body.error.code).toBe("conflict");
      }
      expect(await p.upstream.count({ where: { name: upstream } })).toBe(1);
      expect(await p.grant.count({ where: { name: grant } })).toBe(1);
      expect(await p.agent.count({ where: { name: agent } })).toBe(1);
    }
    // Two grants renamed to one name at once.
    const grants = await Promise.all(
      [1, 2].map(async (i) => (await s.broker.admin("post", "/v1/grants", { name: `rename-${i}`, agents: [], upstream: "api", methods: ["GET"], paths: ["/**"] })).body as { id: string }),
    );
    for (let round = 0; round < 5; round++) {
      const responses = await Promise.all(grants.map((g) => s.broker.admin("patch", `/v1/grants/${g.id}`, { name: `renamed-${round}` })));
      expect(statuses(responses), `rename ${round}`).toEqual([200, statusOf("ADM-14")]);
    }
    expect(s.broker.logs.filter((line) => line.includes('"level":50')), "no request failed with a 500").toEqual([]);
  });

  it(title("ADM-15"), async () => {
    const vault = new Vault(Buffer.from(s.store.masterKey, "base64"));
    const aws = { accessKeyId: "AKIAEXAMPLERACE", secretAccessKey: "aws-race-secret-0123456789abcdef" };
    const mismatched: string[] = [];
    for (let i = 0; i < 20; i++) {
      const name = `kind-race-${i}`;
      await createUpstream(s.broker, { name, baseUrl: s.api.url, environment: "staging", secret: "header-race-secret-0123456789" });
      const [patched, put] = await Promise.all([
        s.broker.admin("patch", `/v1/upstreams/${name}`, { auth: { type: "aws-sigv4", region: "eu-west-1", service: "s3" }, secret: aws }),
        s.broker.admin("put", `/v1/upstreams/${name}/secret`, { secret: "header-race-secret-new-0123456789" }),
      ]);
      s.record(patched);
      s.record(put);
      expect(patched.status, name).toBe(200);
      // Applied before the kind changed, or refused once it had: never a header secret under aws-sigv4.
      expect([200, 400], name).toContain(put.status);
      if (put.status === 400) expect(put.body.error.code).toBe("validation_failed");
      const row = (await s.broker.keyward.db.prisma.upstream.findUnique({ where: { name } }))!;
      const stored = vault.decrypt(row.secretCiphertext, secretContext(row.id));
      const kind = (row.authConfig as { type: string }).type;
      if (kind !== "aws-sigv4" || stored !== JSON.stringify(aws)) mismatched.push(`${name}: ${kind}, PUT ${put.status}`);
    }
    expect(mismatched).toEqual([]);
  });

  it(title("ADM-16"), async () => {
    const admin = (method: "post" | "patch" | "delete", path: string, body?: object) => s.broker.admin(method, path, body).then((r) => s.record(r));
    const grantOn = (name: string, upstream: string, agents: string[] = []) =>
      admin("post", "/v1/grants", { name, agents, upstream, methods: ["GET"], paths: ["/**"] });
    const expectOne = (label: string, responses: { status: number }[], winner: number, losers: number[]) => {
      const got = responses.map((r) => r.status);
      expect(got.filter((st) => st === winner).length, `${label}: ${got}`).toBeGreaterThanOrEqual(1);
      for (const st of got) expect([winner, ...losers], `${label}: ${got}`).toContain(st);
    };
    for (let i = 0; i < 8; i++) {
      await createUpstream(s.broker, { name: `gone-u${i}`, baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "gone-secret" });
      expectOne("upstream deleted ×3", await Promise.all([1, 2, 3].map(() => admin("delete", `/v1/upstreams/gone-u${i}`))), 204, [404]);
      const agent = (await admin("post", "/v1/agents", { name: `gone-a${i}` })).body as { id: string };
      expectOne("agent deleted ×3", await Promise.all([1, 2, 3].map(() => admin("delete", `/v1/agents/${agent.id}`))), 204, [404]);
      const grant = (await grantOn(`gone-g${i}`, "api")).body as { id: string };
      expectOne("grant deleted ×3", await Promise.all([1, 2, 3].map(() => admin("delete", `/v1/grants/${grant.id}`))), 204, [404]);

      await createUpstream(s.broker, { name: `used-u${i}`, baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "used-secret" });
      const [deleted, created] = await Promise.all([admin("delete", `/v1/upstreams/used-u${i}`), grantOn(`used-g${i}`, `used-u${i}`)]);
      // Whichever came first: the grant on a live upstream (the delete then refused), or the delete (the grant then refused).
      expect([[204, 400], [204, 409], [409, 201]], `upstream delete ${deleted.status}, grant ${created.status}`).toContainEqual([deleted.status, created.status]);

      const member = (await admin("post", "/v1/agents", { name: `member-a${i}` })).body as { id: string };
      const [removed, granted] = await Promise.all([admin("delete", `/v1/agents/${member.id}`), grantOn(`member-g${i}`, "api", [member.id])]);
      expect(removed.status).toBe(204);
      expect([201, 400, 409], `grant for a deleted agent: ${granted.status}`).toContain(granted.status);

      const edited = (await grantOn(`edited-g${i}`, "api")).body as { id: string };
      const [patched, dropped] = await Promise.all([admin("patch", `/v1/grants/${edited.id}`, { methods: ["GET", "POST"] }), admin("delete", `/v1/grants/${edited.id}`)]);
      expect(dropped.status).toBe(204);
      expect([200, 404], `grant patched while deleted: ${patched.status}`).toContain(patched.status);
    }
    expect(s.broker.logs.filter((line) => line.includes('"level":50')).map((l) => l.slice(0, 1500)), "no request failed with a 500").toEqual([]);
  });

  it("leaks no secret", async () => {
    await assertNoSecretLeaks(s);
  });
});
