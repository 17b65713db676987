import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf, title } from "./cases.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Preset operations spelled as the API reads them and Keyward might not. AWS actions (src/policy/aws-action.ts), against an
 * upstream protected by the `aws-rds` preset, under a grant that allows every path.
 */
describe("security: AWS Query protocol actions", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "rds", baseUrl: upstream.url, environment: "staging", secret: "sk-rds-secret-0123456789", presets: ["aws-rds"] });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "rds", methods: ["GET", "POST"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const form = "application/x-www-form-urlencoded";

  it.each([
    ["GET", "Operation=DeleteDBSnapshot&DBSnapshotIdentifier=nightly", ""],
    ["POST", "", "Operation=DeleteDBSnapshot&DBSnapshotIdentifier=nightly"],
    ["POST", "Action=DescribeDBInstances", "Operation=DeleteDBSnapshot&DBSnapshotIdentifier=nightly"],
  ])(`${title("REQ-61")}: %s ?%s %s`, async (method, query, body) => {
    const call = broker.http()[method === "GET" ? "get" : "post"](`/proxy/rds/?${query}`).set("authorization", `Bearer ${token}`);
    const res = method === "GET" ? await call : await call.set("content-type", form).send(body);
    expect(res.status).toBe(statusOf("REQ-61"));
    expect(["protected_operation", "uninspectable"]).toContain(res.headers["keyward-error"]);
    expect(upstream.received).toEqual([]);
  });

  it.each([null, "text/plain"])(`${title("REQ-65")}: Content-Type %s`, async (type) => {
    const call = broker.http().post("/proxy/rds/?Action=DescribeDBInstances").set("authorization", `Bearer ${token}`);
    const res = await (type === null ? call : call.set("content-type", type)).send(Buffer.from("Action=DeleteDBSnapshot&DBSnapshotIdentifier=nightly"));
    expect(res.status).toBe(statusOf("REQ-65"));
    expect(res.headers["keyward-error"]).toBe("uninspectable");
    expect(upstream.received).toEqual([]);
  });

  it("REQ-61: a harmless action under either name is forwarded", async () => {
    for (const name of ["Action", "Operation"]) {
      const res = await broker.http().post("/proxy/rds/").set("authorization", `Bearer ${token}`).set("content-type", form).send(`${name}=DescribeDBInstances`);
      expect(res.status, name).toBe(200);
    }
  });
});

/** A REST preset's operation reached under another path the API serves it at. */
describe("security: GitHub repositories by id", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "github", baseUrl: upstream.url, environment: "staging", secret: "ghp_reposbyid0123456789", presets: ["github"] });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "github", methods: ["GET", "DELETE"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it.each(["/repositories/1296269", "/repositories/1296269/", "/REPOSITORIES/1296269", "/repos/octocat/Hello-World"])(`${title("REQ-64")}: DELETE %s`, async (path) => {
    const res = await broker.http().delete(`/proxy/github${path}`).set("authorization", `Bearer ${token}`);
    expect(res.status).toBe(statusOf("REQ-64"));
    expect(res.body.error.code).toBe("protected_operation");
    expect(upstream.received).toEqual([]);
  });

  it("REQ-64: what the repository holds can still be deleted and read by id", async () => {
    expect((await broker.http().delete("/proxy/github/repositories/1296269/issues/comments/1").set("authorization", `Bearer ${token}`)).status).toBe(200);
    expect((await broker.http().get("/proxy/github/repositories/1296269").set("authorization", `Bearer ${token}`)).status).toBe(200);
  });
});
