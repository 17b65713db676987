import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { migrationNames } from "../../src/db/migrate.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/** Replicas a Compose or Kubernetes deployment starts together, and how many fresh schemas they race on. */
const REPLICAS = 4;
const ROUNDS = 3;

/**
 * Issue 16: replicas started at the same moment on a schema that does not exist yet. Schema creation and
 * migrations must run once, under one lock (src/db/database.ts, src/db/migrate.ts): none of the brokers
 * may fail with a unique violation or apply a migration a second time, and every replica serves every
 * other's tokens. In-process brokers (each with its own pool), so that their starts overlap to the
 * millisecond rather than by however long a process takes to load.
 */
describe("faults: replicas starting together on a fresh schema", () => {
  const stores: Store[] = [];
  const brokers: TestBroker[] = [];
  let upstream: Awaited<ReturnType<typeof startUpstream>>;

  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await upstream?.close();
    for (const store of stores) await store.drop();
  });

  it(`${REPLICAS} brokers, ${ROUNDS} times: all start, each migration applied once, tokens valid on every replica`, { timeout: 120_000 }, async () => {
    upstream = await startUpstream();
    const admin = new pg.Client({ connectionString: inject("testDatabaseUrl") });
    await admin.connect();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const store = newStore();
        stores.push(store);
        const schema = new URL(store.databaseUrl).searchParams.get("schema")!;
        const started = await Promise.allSettled(Array.from({ length: REPLICAS }, () => startBroker(store, { LOG_LEVEL: "warn" })));
        const replicas = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
        brokers.push(...replicas);
        expect(
          started.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : [])),
          `round ${round}: brokers that failed to start`,
        ).toEqual([]);

        const { rows } = await admin.query<{ name: string }>(`SELECT name FROM "${schema}"."_keyward_migrations" ORDER BY name`);
        expect(rows.map((r) => r.name)).toEqual(migrationNames());
        const issuers = await admin.query(`SELECT * FROM "${schema}"."DeploymentIssuer"`);
        expect(issuers.rowCount).toBe(1);

        const first = replicas[0]!;
        await createUpstream(first, { name: "api", baseUrl: upstream.url, environment: "staging", secret: `sk-start-${round}` });
        const agent = await createAgent(first, "agent");
        await createGrant(first, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
        for (const issuing of replicas) {
          const token = await tokenFor(issuing, agent, { grant: "g" });
          for (const serving of replicas) {
            const res = await serving.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${token}`);
            expect(res.status, `round ${round}: a token of ${issuing.url} on ${serving.url}`).toBe(200);
          }
        }
        await Promise.all(replicas.map((b) => b.close()));
        brokers.length = 0;
      }
    } finally {
      await admin.end();
    }
  });
});
