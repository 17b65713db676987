import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { constrainCaCertificate, createCaCertificate, issueHostCertificate, newRsaKeyPem } from "../../../src/forward-proxy/x509.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "keyward-nc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const caKey = newRsaKeyPem();
const leafKey = newRsaKeyPem();
const template = createCaCertificate(caKey, "Keyward forward proxy CA test", new Date(), 30, []);
const HOSTS = ["api.example.com", "localhost", "10.1.2.3", "::1", "other.test", "sub.api.example.com", "10.1.2.4"];
let files = 0;

/** What OpenSSL's own verifier says of a leaf for `host` under the CA constrained to `permitted` (or this CA certificate). */
async function verify(permitted: string[] | string, host: string): Promise<string> {
  const caFile = join(dir, `ca-${files}.pem`);
  const leafFile = join(dir, `leaf-${files++}.pem`);
  writeFileSync(caFile, typeof permitted === "string" ? permitted : constrainCaCertificate(template, caKey, permitted));
  writeFileSync(leafFile, issueHostCertificate({ certPem: template, keyPem: caKey }, leafKey, host, new Date(), 1));
  const { stdout, stderr } = await run("openssl", ["verify", "-CAfile", caFile, leafFile]).catch((err: { stdout: string; stderr: string }) => err);
  return /: OK$/m.test(stdout) ? "OK" : /error \d+ at 0 depth lookup: (.*)/.exec(stdout + stderr)?.[1] ?? stdout + stderr;
}

describe("the forward proxy CA's name constraints, as OpenSSL checks them", () => {
  it("DNS names: the named hosts (and their subdomains) only; every IP address is excluded", async () => {
    const permitted = ["api.example.com", "localhost"];
    const results = Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, await verify(permitted, h)])));
    expect(results).toEqual({
      "api.example.com": "OK",
      localhost: "OK",
      "sub.api.example.com": "OK",
      "other.test": "permitted subtree violation",
      "10.1.2.3": "excluded subtree violation",
      "::1": "excluded subtree violation",
      "10.1.2.4": "excluded subtree violation",
    });
  });

  it("IP addresses: exactly those addresses; every DNS name is excluded", async () => {
    const permitted = ["10.1.2.3", "::1"];
    const results = Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, await verify(permitted, h)])));
    expect(results).toEqual({
      "10.1.2.3": "OK",
      "::1": "OK",
      "10.1.2.4": "permitted subtree violation",
      "api.example.com": "excluded subtree violation",
      localhost: "excluded subtree violation",
      "sub.api.example.com": "excluded subtree violation",
      "other.test": "excluded subtree violation",
    });
  });

  it("no host at all: the CA vouches for nothing, and neither does the stored template", async () => {
    for (const ca of [[], template]) {
      for (const host of ["localhost", "10.1.2.3", "::1"]) expect(await verify(ca, host)).toBe("excluded subtree violation");
    }
  });

  it("a re-issue is deterministic (every replica serves the same certificate) and the extension is critical", async () => {
    const once = constrainCaCertificate(template, caKey, ["localhost"]);
    expect(constrainCaCertificate(template, caKey, ["localhost"])).toBe(once);
    expect(constrainCaCertificate(template, caKey, ["api.example.com"])).not.toBe(once);
    writeFileSync(join(dir, "show.pem"), once);
    const { stdout } = await run("openssl", ["x509", "-in", join(dir, "show.pem"), "-noout", "-ext", "nameConstraints"]);
    expect(stdout).toMatch(/X509v3 Name Constraints: critical\s+Permitted:\s+DNS:localhost\s+Excluded:\s+IP:0\.0\.0\.0\/0\.0\.0\.0\s+IP:0:0:0:0:0:0:0:0\/0:0:0:0:0:0:0:0\s*$/);
  });
});
