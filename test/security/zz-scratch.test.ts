import { it } from "vitest";
import { startScenario, rawRequest } from "./harness.js";
const shapes = [
  "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
  "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
  "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  "Content-Length: -1\r\n\r\n",
];
it("close", { timeout: 200_000 }, async () => {
  const s = await startScenario({ KEYWARD_PROXY_MAX_BODY_BYTES: "4096", KEYWARD_HEADERS_TIMEOUT_MS: "1000", KEYWARD_REQUEST_TIMEOUT_MS: "1500" });
  const shape = shapes[Number(process.env.WHICH)]!;
  const r = await rawRequest(s.port, `POST /proxy/api/v1/items HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer ${s.tokens.api}\r\n${shape}`);
  console.log("RES", r.status, r.text.split("\r\n\r\n")[1]);
  await new Promise((res) => setTimeout(res, 500));
  const t = Date.now();
  await Promise.race([s.broker.close(), new Promise((res) => setTimeout(res, 8000))]);
  console.log("CLOSE took", Date.now() - t);
  const rows = await s.broker.keyward.db.prisma.auditEvent.findMany({ where: { kind: { startsWith: "proxy" } }, select: { kind: true, status: true, reason: true } }).catch(() => "db closed");
  console.log("AUDIT", JSON.stringify(rows));
});
