import { describe, expect, it } from "vitest";
import { parseNotification, pingPayloadOf, recordOf } from "../../../src/revocation/records.js";

const change = (overrides: Record<string, unknown> = {}) =>
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
  it("reads a row change as the trigger writes it", () => {
    expect(parseNotification(change(), "public")).toEqual({
      type: "change",
      record: { selector: "agent", value: "agent-1", revokedAt: new Date(1_900_000_000_123), expiresAt: null },
    });
  });

  it("reads a jti change with its expiry, and a kill switch change", () => {
    const jti = parseNotification(change({ selector: "jti", expiresAtMs: 1_900_000_900_000 }), "public");
    expect(jti).toMatchObject({ type: "change", record: { selector: "jti", expiresAt: new Date(1_900_000_900_000) } });
    const lifted = parseNotification(change({ selector: "kill_switch", value: "*", lifted: true }), "public");
    expect(lifted).toEqual({ type: "change", record: { selector: "kill_switch", id: "r1", lifted: true } });
  });

  it("reads a change to a cached table's row (migration 0005), and to all of them", () => {
    expect(parseNotification(JSON.stringify({ schema: "public", table: "Grant", key: "g1" }), "public")).toEqual({
      type: "row-change",
      table: "Grant",
      key: "g1",
    });
    expect(parseNotification(JSON.stringify({ schema: "public", table: "Grant", key: null }), "public")).toMatchObject({ key: null });
  });

  it("reads a ping", () => {
    expect(parseNotification(pingPayloadOf("public", "replica-a", 42), "public")).toEqual({ type: "ping", replica: "replica-a", sentAt: 42 });
  });

  it("ignores another schema's notifications, whatever they hold", () => {
    expect(parseNotification(change({ schema: "other" }), "public")).toEqual({ type: "other-schema" });
    expect(parseNotification(JSON.stringify({ schema: "other", nonsense: true }), "public")).toEqual({ type: "other-schema" });
  });

  it.each([
    ["not JSON", "{"],
    ["a shape it does not know", JSON.stringify({ schema: "public", hello: 1 })],
    ["an unknown selector (a newer replica's)", change({ selector: "phase_of_moon" })],
    ["a wrong type", change({ createdAtMs: "soon" })],
  ])("calls %s unreadable, so the service reloads", (_name, payload) => {
    expect(parseNotification(payload, "public")).toEqual({ type: "unreadable" });
  });
});

describe("recordOf", () => {
  it("refuses a selector it does not know rather than ignoring a revocation", () => {
    expect(() =>
      recordOf({ id: "x", selector: "new_thing", value: "v", createdAt: new Date(), expiresAt: null, lifted: false }),
    ).toThrow();
  });
});
