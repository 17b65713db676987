import { describe, expect, it } from "vitest";
import { IssuerMismatchError, reconcileIssuer, sourceOf } from "../../../src/tokens/deployment-issuer.js";

const recordedByDefault = { issuer: "http://10.0.0.1:8080", source: "default" as const };
const recordedExplicitly = { issuer: "https://keyward.example", source: "KEYWARD_ISSUER" as const };

describe("reconcileIssuer", () => {
  it.each([
    ["a replica without KEYWARD_ISSUER takes the recorded default", recordedByDefault, { url: "http://10.0.0.2:8080", configured: false }, "http://10.0.0.1:8080"],
    ["a replica without KEYWARD_ISSUER takes the recorded explicit one", recordedExplicitly, { url: "http://10.0.0.2:8080", configured: false }, "https://keyward.example"],
    ["a replica configured with the recorded issuer keeps it", recordedExplicitly, { url: "https://keyward.example", configured: true }, "https://keyward.example"],
    ["a replica configured with the first broker's default address keeps it", recordedByDefault, { url: "http://10.0.0.1:8080", configured: true }, "http://10.0.0.1:8080"],
  ])("%s", (_name, recorded, setting, expected) => {
    expect(reconcileIssuer(recorded, setting)).toBe(expected);
  });

  it.each([
    ["another explicit issuer", recordedExplicitly, "https://other.example", /set by KEYWARD_ISSUER/],
    ["an explicit issuer where the first broker recorded its own address", recordedByDefault, "https://keyward.example", /the first broker's own address/],
    // iss is compared as a string by every verifier: a trailing slash is another issuer.
    ["the same URL with a trailing slash", recordedExplicitly, "https://keyward.example/", /set by KEYWARD_ISSUER/],
  ])("refuses %s, naming both and the fix", (_name, recorded, url, origin) => {
    const refuse = () => reconcileIssuer(recorded, { url, configured: true });
    expect(refuse).toThrow(IssuerMismatchError);
    expect(refuse).toThrow(`KEYWARD_ISSUER is ${url}, but this deployment's issuer is ${recorded.issuer}`);
    expect(refuse).toThrow(origin);
    expect(refuse).toThrow(`set KEYWARD_ISSUER=${recorded.issuer}, or leave it unset`);
  });

  it("records where the issuer came from", () => {
    expect(sourceOf({ url: "https://k", configured: true })).toBe("KEYWARD_ISSUER");
    expect(sourceOf({ url: "http://127.0.0.1:8080", configured: false })).toBe("default");
  });
});
