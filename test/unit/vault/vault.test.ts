import { afterEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { loadOrCreateLocalMasterKey, parseMasterKey, Vault, VaultError } from "../../../src/vault/vault.js";

const KEY = Buffer.alloc(32, 7);
const CONTEXT = "upstream-secret:u1";

function vaultError(fn: () => unknown): VaultError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VaultError);
    return err as VaultError;
  }
  throw new Error("no error thrown");
}

/** Flips one bit of the decoded part `index` of an envelope and re-encodes it. */
function flip(envelope: string, index: number, byte = 0): string {
  const parts = envelope.split(".");
  const bytes = Buffer.from(parts[index]!, "base64url");
  bytes[byte] = bytes[byte]! ^ 0x01;
  parts[index] = bytes.toString("base64url");
  return parts.join(".");
}

describe("Vault: construction", () => {
  it.each([0, 16, 31, 33, 64])("refuses a %i-byte master key", (length) => {
    expect(vaultError(() => new Vault(Buffer.alloc(length, 1))).message).toBe("master key must be 32 bytes");
  });

  it("derives a stable 16-hex-digit key id from the key", () => {
    const a = new Vault(KEY);
    expect(a.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(new Vault(Buffer.alloc(32, 7)).keyId).toBe(a.keyId);
    expect(new Vault(Buffer.alloc(32, 8)).keyId).not.toBe(a.keyId);
  });
});

describe("Vault: encrypt / decrypt", () => {
  const plaintexts = ["", "x", "sk-live-abcdef0123456789", "ünïcødé ✓ 😀", "line1\nline2\u0000end", "a".repeat(100_000)];

  it.each(plaintexts.map((p) => [p.length, p]))("round-trips a %i-char plaintext", (_len, plaintext) => {
    const vault = new Vault(KEY);
    expect(vault.decrypt(vault.encrypt(plaintext, CONTEXT), CONTEXT)).toBe(plaintext);
  });

  it("writes v1.<keyId>.<12-byte nonce>.<ciphertext+16-byte tag>", () => {
    const vault = new Vault(KEY);
    const envelope = vault.encrypt("secret", CONTEXT);
    const parts = envelope.split(".");
    expect(parts).toHaveLength(4);
    expect(parts[0]).toBe("v1");
    expect(parts[1]).toBe(vault.keyId);
    expect(Buffer.from(parts[2]!, "base64url")).toHaveLength(12);
    expect(Buffer.from(parts[3]!, "base64url")).toHaveLength("secret".length + 16);
    expect(envelope).not.toContain("secret");
  });

  it("uses a fresh nonce: the same plaintext encrypts differently every time", () => {
    const vault = new Vault(KEY);
    const envelopes = Array.from({ length: 50 }, () => vault.encrypt("same secret", CONTEXT));
    expect(new Set(envelopes).size).toBe(50);
    expect(new Set(envelopes.map((e) => e.split(".")[2])).size).toBe(50);
    for (const e of envelopes) expect(vault.decrypt(e, CONTEXT)).toBe("same secret");
  });

  it("a second Vault with the same key decrypts", () => {
    const envelope = new Vault(KEY).encrypt("secret", CONTEXT);
    expect(new Vault(Buffer.from(KEY)).decrypt(envelope, CONTEXT)).toBe("secret");
  });

  const wrongContexts = ["upstream-secret:u2", "signing-key:u1", "", "upstream-secret:u1 ", "UPSTREAM-SECRET:u1"];
  it.each(wrongContexts)("fails under the wrong context %j", (context) => {
    const vault = new Vault(KEY);
    const envelope = vault.encrypt("secret", CONTEXT);
    expect(vaultError(() => vault.decrypt(envelope, context)).message).toBe("ciphertext failed authentication");
  });

  const tampers: [string, (e: string) => string][] = [
    ["first ciphertext byte", (e) => flip(e, 3, 0)],
    ["last ciphertext byte", (e) => flip(e, 3, 5)],
    ["tag byte", (e) => flip(e, 3, 6 + 15)],
    ["nonce byte", (e) => flip(e, 2, 0)],
    ["truncated tag", (e) => e.slice(0, -2)],
    ["ciphertext and tag swapped for another encryption's", (e) => {
      const other = new Vault(KEY).encrypt("secreT", CONTEXT).split(".");
      const parts = e.split(".");
      parts[3] = other[3]!;
      return parts.join(".");
    }],
    ["nonce taken from another encryption", (e) => {
      const other = new Vault(KEY).encrypt("secret", CONTEXT).split(".");
      const parts = e.split(".");
      parts[2] = other[2]!;
      return parts.join(".");
    }],
  ];
  it.each(tampers)("fails when tampered: %s", (_name, tamper) => {
    const vault = new Vault(KEY);
    const envelope = tamper(vault.encrypt("secret", CONTEXT));
    expect(() => vault.decrypt(envelope, CONTEXT)).toThrow(VaultError);
  });

  // A body of 4..15 bytes used to reach setAuthTag whole, and Node accepts 4- and 8-byte GCM tags: a forged
  // empty plaintext needed only a 32-bit tag. Short bodies and odd nonces are now unreadable outright.
  const malformed: [string, (e: string) => string][] = [
    ["3-byte body", (e) => e.split(".").slice(0, 3).join(".") + ".AAAA"],
    ["4-byte body (a valid short GCM tag length)", (e) => e.split(".").slice(0, 3).join(".") + "." + Buffer.alloc(4).toString("base64url")],
    ["8-byte body (a valid short GCM tag length)", (e) => e.split(".").slice(0, 3).join(".") + "." + Buffer.alloc(8).toString("base64url")],
    ["15-byte body", (e) => e.split(".").slice(0, 3).join(".") + "." + Buffer.alloc(15).toString("base64url")],
    ["nonce decoding to nothing", (e) => { const p = e.split("."); p[2] = "="; return p.join("."); }],
    ["11-byte nonce", (e) => { const p = e.split("."); p[2] = Buffer.alloc(11).toString("base64url"); return p.join("."); }],
    ["16-byte nonce", (e) => { const p = e.split("."); p[2] = Buffer.alloc(16).toString("base64url"); return p.join("."); }],
  ];
  it.each(malformed)("refuses a malformed envelope as unreadable: %s", (_name, mangle) => {
    const vault = new Vault(KEY);
    const envelope = mangle(vault.encrypt("", CONTEXT));
    expect(vaultError(() => vault.decrypt(envelope, CONTEXT)).message).toBe("unreadable ciphertext");
  });

  it("an empty plaintext still round-trips (its body is exactly one tag)", () => {
    const vault = new Vault(KEY);
    const envelope = vault.encrypt("", CONTEXT);
    expect(Buffer.from(envelope.split(".")[3]!, "base64url")).toHaveLength(16);
    expect(vault.decrypt(envelope, CONTEXT)).toBe("");
  });

  it("tampering the body fails authentication rather than returning garbage", () => {
    const vault = new Vault(KEY);
    const envelope = flip(vault.encrypt("secret", CONTEXT), 3, 0);
    expect(vaultError(() => vault.decrypt(envelope, CONTEXT)).message).toBe("ciphertext failed authentication");
  });

  const unreadable: [string, string][] = [
    ["", "unreadable ciphertext"],
    ["garbage", "unreadable ciphertext"],
    ["v1", "unreadable ciphertext"],
    ["v1.abc", "unreadable ciphertext"],
    ["v1.abc.def", "unreadable ciphertext"],
    ["v2.k.n.b", "unreadable ciphertext"],
    [".k.n.b", "unreadable ciphertext"],
    ["v1..n.b", "ciphertext is under another master key ()"],
    ["v1.0123456789abcdef.n.b", "ciphertext is under another master key (0123456789abcdef)"],
  ];
  it.each(unreadable)("refuses the envelope %j: %s", (envelope, message) => {
    expect(vaultError(() => new Vault(KEY).decrypt(envelope, CONTEXT)).message).toBe(message);
  });

  it("says clearly when a ciphertext is under another master key", () => {
    const old = new Vault(Buffer.alloc(32, 1));
    const current = new Vault(Buffer.alloc(32, 2));
    const envelope = old.encrypt("secret", CONTEXT);
    const e = vaultError(() => current.decrypt(envelope, CONTEXT));
    expect(e.message).toBe(`ciphertext is under another master key (${old.keyId})`);
    expect(e.message).not.toContain(current.keyId);
  });

  it("a ciphertext relabelled with the current key id still fails authentication", () => {
    const old = new Vault(Buffer.alloc(32, 1));
    const current = new Vault(Buffer.alloc(32, 2));
    const parts = old.encrypt("secret", CONTEXT).split(".");
    parts[1] = current.keyId;
    expect(vaultError(() => current.decrypt(parts.join("."), CONTEXT)).message).toBe("ciphertext failed authentication");
  });
});

describe("Vault: key material never leaks", () => {
  const key = randomBytes(32);
  const vault = new Vault(key);
  const forms = [key.toString("hex"), key.toString("base64"), key.toString("base64url"), [...key].join(",")];

  const renderings: [string, () => string][] = [
    ["JSON.stringify", () => JSON.stringify(vault)],
    ["JSON.stringify nested", () => JSON.stringify({ config: { vault } })],
    ["util.inspect", () => inspect(vault)],
    ["util.inspect deep with hidden", () => inspect({ vault }, { depth: 10, showHidden: true })],
    ["String()", () => String(vault)],
    ["template literal", () => `${vault as unknown as string}`],
    ["Object.keys values", () => JSON.stringify(Object.entries(vault))],
  ];
  it.each(renderings)("%s shows no key bytes", (_name, render) => {
    const text = render();
    for (const form of forms) expect(text).not.toContain(form);
  });

  it("toJSON is just the key id", () => {
    expect(JSON.parse(JSON.stringify(vault))).toEqual({ keyId: vault.keyId });
  });

  it("util.inspect is Vault(<keyId>)", () => {
    expect(inspect(vault)).toBe(`Vault(${vault.keyId})`);
  });

  it("has no enumerable property holding the key", () => {
    expect(Object.keys(vault)).toEqual(["keyId"]);
  });
});

describe("parseMasterKey", () => {
  const key = randomBytes(32);
  const accepted: [string, string][] = [
    ["base64", key.toString("base64")],
    ["base64 with surrounding whitespace", `  ${key.toString("base64")}\n`],
    ["base64 without its padding", key.toString("base64").replace(/=$/, "")],
    ["base64url", key.toString("base64url")],
  ];
  it.each(accepted)("accepts %s", (_name, text) => {
    expect(parseMasterKey(text).equals(key)).toBe(true);
  });

  const refused: [string, string][] = [
    ["empty", ""],
    ["whitespace", "   \n"],
    ["31 bytes", randomBytes(31).toString("base64")],
    ["33 bytes", randomBytes(33).toString("base64")],
    ["16 bytes", randomBytes(16).toString("base64")],
    ["64 bytes", randomBytes(64).toString("base64")],
    ["32 bytes as hex (64 chars, decodes to 48 bytes)", key.toString("hex")],
    ["a passphrase", "correct horse battery staple"],
    // Buffer.from would skip the characters outside the alphabet and decode the rest to 32 bytes.
    ["32 bytes of base64 in quotes", `"${key.toString("base64")}"`],
    ["32 bytes of base64 with a stray character inside", `${key.toString("base64").slice(0, 20)}!${key.toString("base64").slice(20)}`],
    ["base64 and base64url mixed", `+_${"A".repeat(41)}=`],
  ];
  it.each(refused)("refuses %s", (_name, text) => {
    expect(vaultError(() => parseMasterKey(text)).message).toBe("KEYWARD_MASTER_KEY must be 32 bytes, base64-encoded");
  });

  it("the error never echoes the offending text", () => {
    const text = randomBytes(31).toString("base64");
    expect(vaultError(() => parseMasterKey(text)).message).not.toContain(text);
  });
});

describe("loadOrCreateLocalMasterKey", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-vault-"));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("creates a 32-byte key file with mode 0600, then reads the same key back", () => {
    const dir = tempDir();
    const first = loadOrCreateLocalMasterKey(dir);
    expect(first.generated).toBe(true);
    expect(first.path).toBe(join(dir, "master.key"));
    expect(first.key).toHaveLength(32);
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.path, "utf8")).toBe(first.key.toString("base64") + "\n");

    const second = loadOrCreateLocalMasterKey(dir);
    expect(second.generated).toBe(false);
    expect(second.path).toBe(first.path);
    expect(second.key.equals(first.key)).toBe(true);
    // and the key works across the two loads
    const envelope = new Vault(first.key).encrypt("secret", CONTEXT);
    expect(new Vault(second.key).decrypt(envelope, CONTEXT)).toBe("secret");
  });

  it("creates a missing data directory (owner-only)", () => {
    const dir = join(tempDir(), "nested", "data");
    const created = loadOrCreateLocalMasterKey(dir);
    expect(created.generated).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(created.path).mode & 0o777).toBe(0o600);
  });

  it("mode is 0600 even under a permissive umask", () => {
    const previous = process.umask(0o000);
    try {
      const created = loadOrCreateLocalMasterKey(tempDir());
      expect(statSync(created.path).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });

  it("two directories get two different keys", () => {
    expect(loadOrCreateLocalMasterKey(tempDir()).key.equals(loadOrCreateLocalMasterKey(tempDir()).key)).toBe(false);
  });

  it("refuses a corrupt existing key file instead of replacing it", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "master.key"), "not a key\n");
    expect(() => loadOrCreateLocalMasterKey(dir)).toThrow(VaultError);
    expect(readFileSync(join(dir, "master.key"), "utf8")).toBe("not a key\n");
  });
});
