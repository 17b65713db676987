import { describe, expect, it } from "vitest";
import { recordOf } from "../../../src/revocation/records.js";

describe("recordOf", () => {
  it("refuses a selector it does not know rather than ignoring a revocation", () => {
    expect(() =>
      recordOf({ id: "x", selector: "new_thing", value: "v", createdAt: new Date(), expiresAt: null, lifted: false }),
    ).toThrow();
  });
});
