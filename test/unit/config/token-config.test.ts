import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/config.js";

const PREVIOUS_KEY = Buffer.alloc(32, 6).toString("base64");

describe("token service configuration", () => {
  it("defaults: 15-minute tokens, a one-hour ceiling, 5 s leeway, monthly key rotation, a day of secret overlap", () => {
    const config = loadConfig({});
    expect(config.tokens).toEqual({ defaultTtlSeconds: 900, maxTtlSeconds: 3600, leewaySeconds: 5 });
    expect(config.signingKeys).toEqual({ rotateAfterMs: 30 * 86_400_000, reloadMs: 60_000 });
    expect(config.clientSecretOverlapSeconds).toBe(86_400);
    expect(config.masterKeyPrevious).toBeUndefined();
  });

  it("reads every setting", () => {
    const config = loadConfig({
      KEYWARD_TOKEN_DEFAULT_TTL_SECONDS: "60",
      KEYWARD_TOKEN_MAX_TTL_SECONDS: "300",
      KEYWARD_CLOCK_SKEW_SECONDS: "0",
      KEYWARD_SIGNING_KEY_ROTATE_DAYS: "7",
      KEYWARD_SIGNING_KEY_RELOAD_MS: "5000",
      KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS: "0",
      KEYWARD_MASTER_KEY_PREVIOUS: PREVIOUS_KEY,
    });
    expect(config.tokens).toEqual({ defaultTtlSeconds: 60, maxTtlSeconds: 300, leewaySeconds: 0 });
    expect(config.signingKeys).toEqual({ rotateAfterMs: 7 * 86_400_000, reloadMs: 5000 });
    expect(config.clientSecretOverlapSeconds).toBe(0);
    expect(config.masterKeyPrevious).toBe(PREVIOUS_KEY);
  });

  it.each([
    [{ KEYWARD_TOKEN_MAX_TTL_SECONDS: "3601" }, /KEYWARD_TOKEN_MAX_TTL_SECONDS/],
    [{ KEYWARD_TOKEN_DEFAULT_TTL_SECONDS: "0" }, /KEYWARD_TOKEN_DEFAULT_TTL_SECONDS/],
    [{ KEYWARD_TOKEN_DEFAULT_TTL_SECONDS: "900", KEYWARD_TOKEN_MAX_TTL_SECONDS: "600" }, /must not exceed KEYWARD_TOKEN_MAX_TTL_SECONDS/],
    [{ KEYWARD_CLOCK_SKEW_SECONDS: "61" }, /KEYWARD_CLOCK_SKEW_SECONDS/],
    [{ KEYWARD_CLOCK_SKEW_SECONDS: "-1" }, /KEYWARD_CLOCK_SKEW_SECONDS/],
    [{ KEYWARD_SIGNING_KEY_ROTATE_DAYS: "0" }, /KEYWARD_SIGNING_KEY_ROTATE_DAYS/],
    [{ KEYWARD_SIGNING_KEY_RELOAD_MS: "10" }, /KEYWARD_SIGNING_KEY_RELOAD_MS/],
    [{ KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS: "ten" }, /KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS/],
  ])("refuses %o", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
