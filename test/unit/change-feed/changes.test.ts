import { describe, expect, it } from "vitest";
import { parseNotification, pingPayloadOf } from "../../../src/change-feed/changes.js";

const revocation = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    schema: "public",
    id: "r1",
    selector: "agent",
    value: "agent-1",
    createdAtMs: 1_900_000_000_123,
    expiresAtMs: null,
    lifted: false,
    ...overrides,
  });

describe("parseNotification", () => {
  it("reads a revocation row as the trigger writes it", () => {
    expect(parseNotification(revocation(), "public")).toEqual({
      type: "change",
      change: {
        table: "Revocation",
        row: { id: "r1", selector: "agent", value: "agent-1", createdAt: new Date(1_900_000_000_123), expiresAt: null, lifted: false },
      },
    });
  });

  it("reads a jti revocation with its expiry, and a lifted kill switch", () => {
    const jti = parseNotification(revocation({ selector: "jti", expiresAtMs: 1_900_000_900_000 }), "public");
    expect(jti).toMatchObject({ type: "change", change: { row: { selector: "jti", expiresAt: new Date(1_900_000_900_000) } } });
    const lifted = parseNotification(revocation({ selector: "kill_switch", value: "*", lifted: true }), "public");
    expect(lifted).toMatchObject({ type: "change", change: { row: { selector: "kill_switch", lifted: true } } });
  });

  it("reads a change to a cached table's row (migration 0005), and to all of them", () => {
    expect(parseNotification(JSON.stringify({ schema: "public", table: "Grant", key: "g1" }), "public")).toEqual({
      type: "change",
      change: { table: "Grant", key: "g1" },
    });
    expect(parseNotification(JSON.stringify({ schema: "public", table: "Grant", key: null }), "public")).toMatchObject({ change: { key: null } });
  });

  it("tells a table this version caches nothing of from an unreadable payload", () => {
    expect(parseNotification(JSON.stringify({ schema: "public", table: "Hologram", key: "h" }), "public")).toEqual({ type: "uncached-table" });
  });

  it("reads a ping", () => {
    expect(parseNotification(pingPayloadOf("public", "replica-a", 42), "public")).toEqual({ type: "ping", replica: "replica-a", sentAt: 42 });
  });

  it("ignores another schema's notifications, whatever they hold", () => {
    expect(parseNotification(revocation({ schema: "other" }), "public")).toEqual({ type: "other-schema" });
    expect(parseNotification(JSON.stringify({ schema: "other", nonsense: true }), "public")).toEqual({ type: "other-schema" });
  });

  it.each([
    ["not JSON", "{"],
    ["a shape it does not know", JSON.stringify({ schema: "public", hello: 1 })],
    ["a wrong type", revocation({ createdAtMs: "soon" })],
  ])("calls %s unreadable, so the feed reloads", (_name, payload) => {
    expect(parseNotification(payload, "public")).toEqual({ type: "unreadable" });
  });
});
