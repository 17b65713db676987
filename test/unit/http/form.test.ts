import { describe, expect, it } from "vitest";
import { parseForm } from "../../../src/http/form.js";

describe("parseForm", () => {
  it("decodes application/x-www-form-urlencoded", () => {
    expect(parseForm("grant_type=client_credentials&scope=grant%3Adeploy+method%3AGET")).toEqual({
      grant_type: "client_credentials",
      scope: "grant:deploy method:GET",
    });
    expect(parseForm("")).toEqual({});
  });

  it("treats a parameter without a value as omitted (RFC 6749 §3.1)", () => {
    expect(parseForm("scope=&grant_type=client_credentials&x")).toEqual({ grant_type: "client_credentials" });
  });

  it("refuses a repeated parameter, even an empty one", () => {
    expect(() => parseForm("scope=a&scope=b")).toThrow("parameter scope is repeated");
    expect(() => parseForm("scope=&scope=")).toThrow("parameter scope is repeated");
  });

  it("keeps __proto__ an ordinary field", () => {
    const form = parseForm("__proto__=x&constructor=y");
    expect(Object.getPrototypeOf(form)).toBe(Object.prototype);
    expect(Object.keys(form)).toEqual(["__proto__", "constructor"]);
  });
});
