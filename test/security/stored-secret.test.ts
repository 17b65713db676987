import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf, title } from "./cases.js";
import { startScenario, type Scenario } from "./harness.js";
import { waitFor } from "../helpers/wait.js";

/**
 * ADM-13: what the database holds of an upstream's secret is checked when written, but a broker may still
 * find one it cannot use: encrypted under another master key (a replica started with the wrong one, a
 * restore), or no longer the shape its kind needs (the config changed beside it). Its calls are refused
 * as for a credential that cannot be obtained, never with a 500, and the log never quotes the secret.
 */
describe(title("ADM-13"), () => {
  let s: Scenario;

  beforeAll(async () => {
    s = await startScenario();
  });

  afterAll(async () => {
    await s?.close();
  });

  const call = () => s.broker.http().get("/proxy/keyed/v1/items").set("authorization", `Bearer ${s.tokens.keyed}`);

  /** Applies a change straight to the stored row, as another broker or an earlier version would, and waits for the proxy to refuse. */
  async function refusedAfter(change: Parameters<typeof s.broker.keyward.db.prisma.upstream.update>[0]["data"]) {
    expect((await call()).status).toBe(200);
    await s.broker.keyward.db.prisma.upstream.update({ where: { name: "keyed" }, data: change });
    await waitFor(async () => ((await call()).status === 200 ? null : true), 5000, "the stored change to reach the proxy");
    const before = s.keyed.received.length;
    const refused = await call();
    expect(refused.status, refused.text).toBe(statusOf("ADM-13"));
    // In the upstream's own dialect once its kind is known (S3's XML for aws-sigv4), the code in a header.
    expect(refused.headers["keyward-error"], refused.text).toBe("upstream_credential_unavailable");
    expect(s.keyed.received.length).toBe(before);
    expect(refused.text).not.toContain(s.secrets.keyed.slice(0, 8));
    return refused;
  }

  async function setAgain() {
    const res = await s.broker.admin("put", "/v1/upstreams/keyed/secret", { secret: s.secrets.keyed });
    expect(res.status, res.text).toBe(200);
    const after = await call();
    expect(after.status).toBe(200);
    expect(s.keyed.received.at(-1)!.headers["x-api-key"]).toBe(s.secrets.keyed);
  }

  it("a secret encrypted under another master key", async () => {
    const row = await s.broker.keyward.db.prisma.upstream.findUniqueOrThrow({ where: { name: "keyed" } });
    // The envelope names the key it was encrypted under (format.keyId.nonce.body): here one this broker does not hold.
    const [format, , nonce, body] = row.secretCiphertext.split(".");
    await refusedAfter({ secretCiphertext: [format, "another-master-key", nonce, body].join(".") });
    expect(s.broker.logs.some((line) => line.includes("upstream keyed's stored secret cannot be decrypted"))).toBe(true);
    await setAgain();
  });

  it("a secret that is not the shape its kind needs", async () => {
    // A header secret (a string) under an aws-sigv4 config (which needs an object of keys).
    await refusedAfter({ authConfig: { type: "aws-sigv4", region: "us-east-1", service: "s3", payload: "signed" } });
    expect(s.broker.logs.filter((line) => line.includes("upstream keyed")).join("\n")).toContain("upstream keyed's stored secret does not fit its aws-sigv4 credential");
    expect(s.broker.logs.some((line) => line.includes(s.secrets.keyed.slice(0, 8)))).toBe(false);
    const restored = await s.broker.admin("patch", "/v1/upstreams/keyed", { auth: { type: "header", header: "X-Api-Key", template: "{secret}" }, secret: s.secrets.keyed });
    expect(restored.status, restored.text).toBe(200);
    expect((await call()).status).toBe(200);
  });
});
