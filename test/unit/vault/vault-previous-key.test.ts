import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Vault, VaultError } from "../../../src/vault/vault.js";

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

describe("Vault during a master-key rotation", () => {
  const before = new Vault(oldKey);
  const during = new Vault(newKey, oldKey);
  const after = new Vault(newKey);
  const underOld = before.encrypt("the-secret", "ctx");

  it("decrypts what is under the previous key, picked by the envelope's key id", () => {
    expect(during.decrypt(underOld, "ctx")).toBe("the-secret");
  });

  it("encrypts under the current key only", () => {
    const underNew = during.encrypt("the-secret", "ctx");
    expect(underNew.split(".")[1]).toBe(after.keyId);
    expect(during.keyId).toBe(after.keyId);
    expect(after.decrypt(underNew, "ctx")).toBe("the-secret");
    expect(() => before.decrypt(underNew, "ctx")).toThrow(VaultError);
  });

  it("tells which envelopes are already under the current key", () => {
    expect(during.isCurrent(underOld)).toBe(false);
    expect(during.isCurrent(during.encrypt("x", "ctx"))).toBe(true);
    expect(during.isCurrent("garbage")).toBe(false);
  });

  it("once the previous key is dropped, what was left under it no longer decrypts", () => {
    expect(() => after.decrypt(underOld, "ctx")).toThrow(/another master key/);
  });

  it("the previous key still binds the context", () => {
    expect(() => during.decrypt(underOld, "other-ctx")).toThrow(VaultError);
  });

  it("refuses a previous key of the wrong size", () => {
    expect(() => new Vault(newKey, randomBytes(16))).toThrow(VaultError);
  });

  it("never shows either key", () => {
    expect(JSON.stringify(during)).not.toContain(oldKey.toString("base64"));
    expect(JSON.stringify(during)).toBe(JSON.stringify({ keyId: after.keyId }));
  });
});
