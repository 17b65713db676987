import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { ForwardProxyCa } from "../../src/forward-proxy/ca.js";
import { HostIndex } from "../../src/forward-proxy/hosts.js";
import { parseMasterKey, Vault } from "../../src/vault/vault.js";

/**
 * The forward proxy's host certificates are kept while they have a day left (src/forward-proxy/ca.ts);
 * the change feed's periodic refresh (every 30 s) and full reload (every 5 min) are the safety net for a
 * rotation another replica announced and this one did not hear. Two CAs on one database stand for two
 * replicas; the feed's calls are made by hand.
 */
describe("forward proxy CA: host certificates across the change feed's refreshes", () => {
  let store: Store;
  let broker: TestBroker;
  const replica = () =>
    new ForwardProxyCa(broker.keyward.db.prisma, new Vault(parseMasterKey(store.masterKey)), { current: async () => new HostIndex([]) }, { follow: () => {} });

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
  });

  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  it("a refresh or reload keeps the certificates of the CA still active, and drops them after a rotation it did not hear", async () => {
    const ca = replica();
    const first = await ca.contextFor("api.example.com");
    await ca.refresh();
    await ca.reload();
    // Before the fix: every refresh dropped them, and each host's certificate was signed anew.
    expect(await ca.contextFor("api.example.com")).toBe(first);

    await replica().rotate({ actor: "admin:test", requestId: randomUUID() });
    expect(await ca.contextFor("api.example.com")).toBe(first);
    await ca.refresh();
    const rotated = await ca.contextFor("api.example.com");
    expect(rotated).not.toBe(first);
    expect(await ca.certificatePem()).toBe(await replica().certificatePem());
  });
});
