import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { statusOf, title } from "./cases.js";

/** Admin keys revoked at once: the rule that the last admin key stays holds against concurrent revocations too. */
describe(title("ADM-17"), () => {
  let store: Store;
  let broker: TestBroker;
  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  const as = (key: string, method: "post" | "delete" | "get", path: string, body?: object) => {
    const req = broker.http()[method](path).set("authorization", `Bearer ${key}`);
    return body ? req.send(body) : req;
  };
  const liveAdmins = () => broker.keyward.db.prisma.adminKey.findMany({ where: { role: "admin", revokedAt: null } });

  it("two admins each revoking the other at once: one wins, the other is refused, an admin key is left", async () => {
    let survivor = { id: (await liveAdmins())[0]!.id, key: TEST_ADMIN_KEY };
    for (let round = 0; round < 15; round++) {
      const [x, y] = await Promise.all(
        ["x", "y"].map(async (n) => {
          const res = await as(survivor.key, "post", "/v1/admin-keys", { name: `${n}-${round}`, role: "admin" });
          expect(res.status).toBe(201);
          return res.body as { id: string; key: string };
        }),
      );
      expect((await as(x!.key, "delete", `/v1/admin-keys/${survivor.id}`)).status).toBe(204);
      // Only x and y are admins now; each revokes the other.
      const [byY, byX] = await Promise.all([as(y!.key, "delete", `/v1/admin-keys/${x!.id}`), as(x!.key, "delete", `/v1/admin-keys/${y!.id}`)]);
      const live = await liveAdmins();
      expect(live.length, `round ${round}: ${byY.status} ${byX.status}`).toBe(1);
      // The loser is 409, or 401 when its own key was already revoked as it arrived.
      const [won, lost] = [byY.status, byX.status].sort();
      expect(won).toBe(204);
      expect([statusOf("ADM-17"), 401]).toContain(lost);
      survivor = live[0]!.id === x!.id ? x! : y!;
    }
    expect(broker.logs.filter((line) => line.includes('"level":50'))).toEqual([]);
  }, 60_000);
});
