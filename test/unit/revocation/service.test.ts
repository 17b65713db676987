import { describe, expect, it } from "vitest";
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../../../src/db/database.js";
import { pingPayloadOf } from "../../../src/revocation/records.js";
import { RevocationService } from "../../../src/revocation/service.js";
import type { AgentToken } from "../../../src/tokens/claims.js";

type Row = { id: string; selector: string; value: string; createdAt: Date; expiresAt: Date | null };

/** A database whose loads the test releases by hand, and whose notifications the test delivers. */
function fakeDatabase() {
  const pending: { rows: Row[]; release: () => void }[] = [];
  let deliver: (payload: string) => void = () => {};
  let lose: (err: Error) => void = () => {};
  const db = {
    schema: "public",
    prisma: {
      revocation: {
        findMany: () =>
          new Promise<Row[]>((resolve) => {
            const load = { rows: [] as Row[], release: () => resolve(load.rows) };
            pending.push(load);
          }),
      },
    },
    listen: async (_channel: string, onNotify: (p: string) => void, onLost: (e: Error) => void) => {
      deliver = onNotify;
      lose = onLost;
      return { close: async () => {} };
    },
    notify: async () => {},
  } as unknown as Database;
  return { db, pending, deliver: (p: string) => deliver(p), lose: (e: Error) => lose(e) };
}

const silent = { warn() {}, info() {}, error() {} } as unknown as FastifyBaseLogger;
const T = 1_900_000_000_000;
const token = { jti: "j", agentId: "agent-1", grantId: "g", upstream: "api", issuedAt: T / 1000 - 10 } as AgentToken;
const change = (id: string, selector: string, value: string) =>
  JSON.stringify({ schema: "public", id, selector, value, createdAtMs: T, expiresAtMs: null, lifted: false });
const flush = () => new Promise((r) => setImmediate(r));

describe("RevocationService", () => {
  it("a change announced while a full load runs survives the load's older snapshot", async () => {
    const fake = fakeDatabase();
    const service = new RevocationService(fake.db, { resyncMs: 60_000, maxStalenessMs: 5000, replicaId: "me", now: () => T });
    const started = service.start(silent);
    await flush();
    fake.deliver(change("r1", "agent", "agent-1")); // committed after the snapshot was taken
    fake.pending[0]!.release(); // the snapshot: no revocations
    await started;
    expect(() => service.assertNotRevoked(token)).toThrow(/agent's tokens revoked/);
    await service.stop();
  });

  it("is current after its first load, stays current on its own echoed pings, and goes stale without them", async () => {
    let now = T;
    const fake = fakeDatabase();
    const service = new RevocationService(fake.db, { resyncMs: 60_000, maxStalenessMs: 5000, replicaId: "me", now: () => now });
    const started = service.start(silent);
    await flush();
    fake.pending[0]!.release();
    await started;
    expect(service.isCurrent()).toBe(true);

    now = T + 4000;
    fake.deliver(pingPayloadOf("public", "me", now));
    fake.deliver(pingPayloadOf("public", "someone-else", now + 1000)); // another replica's ping proves nothing here
    fake.deliver(pingPayloadOf("other_schema", "me", now + 1000));
    now = T + 9000;
    expect(service.isCurrent()).toBe(true);
    now = T + 9001;
    expect(service.isCurrent()).toBe(false);
    expect(() => service.assertNotRevoked(token)).toThrow(/not current/);
    await service.stop();
  });

  it("after losing its connection, pings count again only once a reload that followed the new LISTEN is done", async () => {
    let now = T;
    const fake = fakeDatabase();
    const service = new RevocationService(fake.db, { resyncMs: 60_000, maxStalenessMs: 100, replicaId: "me", now: () => now });
    const started = service.start(silent);
    await flush();
    fake.pending[0]!.release();
    await started;
    fake.lose(new Error("terminated"));
    await new Promise((r) => setTimeout(r, 60)); // the recovery re-listens and starts a reload
    now = T + 50;
    fake.deliver(pingPayloadOf("public", "me", now));
    now = T + 150;
    expect(service.isCurrent()).toBe(false); // the echo came before the reload finished
    fake.pending.at(-1)!.release();
    await flush();
    fake.deliver(pingPayloadOf("public", "me", now));
    expect(service.isCurrent()).toBe(true);
    await service.stop();
  });
});
