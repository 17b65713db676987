/**
 * The floor of token issuance over HTTP: a Fastify route on POST /v1/tokens that parses the JSON body and
 * signs an ES256 JWT with the claims Keyward's tokens carry, and nothing else (no client authentication,
 * no record, no audit event). Against raw signing in the same run, it says how much of that rate any
 * token endpoint on this machine can reach.
 *
 * With BENCH_TOKEN_FLOOR_DURABLE=1 it also makes each token's record durable before it answers, as
 * issue 14's guarantee asks of Keyward (bench/durable-lines.ts: a hash-chained line per token, one
 * `fdatasync` per group): what a token endpoint that keeps the guarantee can reach here.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { generateKeyPair } from "jose";
import { serveChild } from "./child.js";
import { openDurableLines } from "./durable-lines.js";
import { signBenchToken } from "./scenario.js";

const { privateKey } = await generateKeyPair("ES256");
const kid = randomUUID();
const records = process.env.BENCH_TOKEN_FLOOR_DURABLE === "1" ? openDurableLines() : null;
const app = Fastify({ logger: false });

app.post("/v1/tokens", async (request) => {
  const body = request.body as { grant?: unknown } | undefined;
  const grant = typeof body?.grant === "string" ? body.grant : randomUUID();
  const accessToken = await signBenchToken(privateKey, { clientId: "kwc_floor", grant, kid });
  await records?.durable({ at: new Date().toISOString(), kind: "token.issued", grant, kid, token: accessToken.length });
  return { access_token: accessToken, token_type: "Bearer", expires_in: 3600 };
});

await app.listen({ port: 0, host: "127.0.0.1" });
serveChild((app.server.address() as AddressInfo).port, {}, async () => {
  await app.close();
  records?.remove();
});
