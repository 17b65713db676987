import { describe, expect, it } from "vitest";
import type { FastifyBaseLogger } from "fastify";
import type { RowChange } from "../../../src/change-feed/changes.js";
import { ChangeFeed, type ChangeFollower } from "../../../src/change-feed/feed.js";
import type { Database } from "../../../src/db/database.js";
import { waitFor } from "../../helpers/wait.js";

/** A database whose notifications the test delivers. */
function fakeDatabase() {
  let deliver: (payload: string) => void = () => {};
  const db = {
    schema: "public",
    listen: async (_channel: string, onNotify: (p: string) => void) => {
      deliver = onNotify;
      return { close: async () => {} };
    },
    notify: async () => {},
  } as unknown as Database;
  return { db, deliver: (p: string) => deliver(p) };
}

const silent = { warn() {}, info() {}, error() {} } as unknown as FastifyBaseLogger;

/** Records what the feed asks of it. */
function recordingFollower(seen: string[]): ChangeFollower<RowChange> {
  return {
    tables: ["Grant"],
    refreshMs: 60_000,
    changed: ({ table, key }) => void seen.push(`${table}:${key}`),
    reload: async () => void seen.push("reload"),
    refresh: async () => void seen.push("refresh"),
  };
}

/** A started feed on the fake database, with one recording follower of Grant changes. */
async function startedFeed() {
  const fake = fakeDatabase();
  const feed = new ChangeFeed(fake.db, { resyncMs: 60_000, maxStalenessMs: 5000, replicaId: "me", log: silent });
  const seen: string[] = [];
  feed.follow(recordingFollower(seen));
  await feed.start();
  return { fake, feed, seen };
}

describe("ChangeFeed", () => {
  it("passes the changes of a followed table to its followers, announced or committed here, and reloads them all", async () => {
    const { fake, feed, seen } = await startedFeed();
    expect(feed.isCurrent()).toBe(true);
    fake.deliver(JSON.stringify({ schema: "public", table: "Grant", key: "g1" }));
    fake.deliver(JSON.stringify({ schema: "public", table: "Upstream", key: "api" })); // nobody follows it here
    fake.deliver(JSON.stringify({ schema: "public", table: "Hologram", key: "h" })); // nothing here caches it
    fake.deliver(JSON.stringify({ schema: "other", table: "Grant", key: "g2" }));
    feed.committedHere({ table: "Grant", key: "g3" });
    await feed.reload();
    expect(seen).toEqual(["reload", "Grant:g1", "Grant:g3", "reload"]);
    await feed.stop();
  });

  it("an unreadable notification makes every follower reload", async () => {
    const { fake, feed, seen } = await startedFeed();
    fake.deliver("{");
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["reload", "reload"]);
    await feed.stop();
  });

  it("recovers a lost connection with one notification connection, however often the tries fail (and however they report it)", async () => {
    let failuresLeft = 5;
    let open = 0;
    let listens = 0;
    let lose: (err: Error) => void = () => {};
    // Like PostgreSQL, the open subscription hears what is notified: the feed's pings come back.
    let hear: ((payload: string) => void) | null = null;
    const db = {
      schema: "public",
      listen: async (_channel: string, onNotify: (payload: string) => void, onLost: (err: Error) => void) => {
        listens++;
        await new Promise((r) => setTimeout(r, 5));
        if (failuresLeft-- > 0) {
          // A client that reports its loss as well as rejecting: a feed that recovered from both would
          // double its tries at every failure and keep every connection that succeeded.
          onLost(new Error("read ECONNRESET"));
          throw new Error("read ECONNRESET");
        }
        open++;
        let closed = false;
        const close = () => {
          if (!closed) open--;
          closed = true;
          if (hear === onNotify) hear = null;
        };
        hear = onNotify;
        lose = (err) => {
          close();
          onLost(err);
        };
        return { close: async () => close() };
      },
      notify: async (_channel: string, payload: string) => hear?.(payload),
    } as unknown as Database;
    const feed = new ChangeFeed(db, { resyncMs: 60_000, maxStalenessMs: 100, replicaId: "me", log: silent });
    feed.follow(recordingFollower([]));
    failuresLeft = 0;
    await feed.start();
    failuresLeft = 5;
    lose(new Error("connection lost"));
    await waitFor(() => open > 0, 5_000, "the feed to listen again", 10);
    const listensToRecover = listens;
    await new Promise((r) => setTimeout(r, 300));
    expect(open).toBe(1);
    expect(listensToRecover).toBe(1 + 6);
    expect(listens).toBe(listensToRecover);
    await feed.stop();
    expect(open).toBe(0);
  });
});
