import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "./cases.js";

/**
 * Redaction (docs/redaction.md) works on one answer at a time. An upstream holding a copy of its key in
 * something it serves by byte ranges (a config file in a repository or a bucket) would hand it to an agent
 * reading it a few bytes per call, in pieces shorter than any form redaction searches for.
 */
describe("byte ranges and redaction", () => {
  const secret = "sk-live-range-0123456789abcdef0123";
  const REDACTED = "[redacted-by-keyward]";
  const file = Buffer.from(`# deploy settings\nREGION=eu-west-1\nDEPLOY_TOKEN=${secret}\nREPLICAS=3\n`);
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    // A file server: answers byte ranges, as HTTP allows.
    upstream = await startUpstream((req, res) => {
      // Range; else the headers other servers read as it: Apache httpd takes Request-Range when there is no
      // Range (for Netscape 2-3), Azure Storage takes x-ms-range.
      const asked = req.headers.range ?? req.headers["request-range"] ?? req.headers["x-ms-range"];
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(asked ?? ""));
      if (!range) {
        res.writeHead(200, { "content-type": "text/plain", "accept-ranges": "bytes", "content-length": file.length });
        return res.end(file);
      }
      const [start, end] = [Number(range[1]), Math.min(Number(range[2]), file.length - 1)];
      res.writeHead(206, { "content-type": "text/plain", "content-range": `bytes ${start}-${end}/${file.length}`, "content-length": end - start + 1 });
      res.end(file.subarray(start, end + 1));
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "files", baseUrl: upstream.url, environment: "staging", secret });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "files", methods: ["GET"], paths: ["/v1/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const get = () => broker.http().get("/proxy/files/v1/files/config.env").set("authorization", `Bearer ${token}`);

  it(title("SEC-03"), async () => {
    const whole = await get();
    expect(whole.text).toContain(`DEPLOY_TOKEN=${REDACTED}`);
    let assembled = "";
    for (let start = 0; start < file.length; start += 7) {
      const res = await get().set("range", `bytes=${start}-${start + 6}`).set("if-range", '"v1"');
      expect(res.status).toBe(statusOf("SEC-03"));
      expect(res.text).toBe(whole.text);
      expect(upstream.received.at(-1)!.headers.range).toBeUndefined();
      expect(upstream.received.at(-1)!.headers["if-range"]).toBeUndefined();
      assembled += res.text.slice(start, start + 7);
    }
    expect(assembled).not.toContain(secret);
  });

  it.each(["request-range", "x-ms-range"])(`${title("REQ-54")}: %s`, async (header) => {
    const whole = await get();
    let assembled = "";
    for (let start = 0; start < file.length; start += 7) {
      const res = await get().set(header, `bytes=${start}-${start + 6}`);
      expect(res.status).toBe(statusOf("REQ-54"));
      expect(res.text).toBe(whole.text);
      expect(upstream.received.at(-1)!.headers[header]).toBeUndefined();
      assembled += res.text.slice(start, start + 7);
    }
    expect(assembled).not.toContain(secret);
  });
});
