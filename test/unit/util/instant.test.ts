import { describe, expect, it } from "vitest";
import { checkedTimeZone, isoInZone } from "../../../src/util/instant.js";

const AT = "2026-12-06T06:22:12.345Z";

describe("isoInZone", () => {
  it("is ISO 8601 with Z in UTC, and with the zone's offset elsewhere", () => {
    expect(isoInZone(AT, "UTC")).toBe("2026-12-06T06:22:12Z");
    expect(isoInZone(AT, "Etc/UTC", { milliseconds: true })).toBe("2026-12-06T06:22:12.345Z");
    expect(isoInZone(AT, "Asia/Kolkata")).toBe("2026-12-06T11:52:12+05:30");
    expect(isoInZone(AT, "America/New_York", { milliseconds: true })).toBe("2026-12-06T01:22:12.345-05:00");
    // A zone at UTC's time that is not UTC says so by its offset, not Z.
    expect(isoInZone(AT, "Europe/London")).toBe("2026-12-06T06:22:12+00:00");
  });

  it("follows daylight saving, crosses midnight, and reads back as the same instant", () => {
    expect(isoInZone("2026-06-06T23:30:00Z", "Europe/Paris")).toBe("2026-06-07T01:30:00+02:00");
    expect(isoInZone("2026-01-01T00:30:00Z", "America/Los_Angeles")).toBe("2025-12-31T16:30:00-08:00");
    for (const zone of ["UTC", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns"]) {
      expect(Date.parse(isoInZone(AT, zone, { milliseconds: true })), zone).toBe(Date.parse(AT));
    }
  });

  it("uses the runtime's zone when none is named", () => {
    expect(Date.parse(isoInZone(AT))).toBe(Date.parse("2026-12-06T06:22:12Z"));
  });
});

describe("checkedTimeZone", () => {
  it("resolves an IANA name and refuses an unknown one", () => {
    expect(checkedTimeZone("Etc/UTC")).toBe("UTC");
    expect(checkedTimeZone("Europe/Paris")).toBe("Europe/Paris");
    expect(() => checkedTimeZone("Mars/Olympus_Mons")).toThrow(RangeError);
  });
});
