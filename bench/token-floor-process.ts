/**
 * The floor of token issuance over HTTP: a Fastify route on POST /v1/tokens that parses the JSON body and
 * signs an ES256 JWT with the claims Keyward's tokens carry, and nothing else (no client authentication,
 * no record, no audit event). Against raw signing in the same run, it says how much of that rate any
 * token endpoint on this machine can reach.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { generateKeyPair } from "jose";
import { serveChild } from "./child.js";
import { signBenchToken } from "./scenario.js";

const { privateKey } = await generateKeyPair("ES256");
const kid = randomUUID();
const app = Fastify({ logger: false });

app.post("/v1/tokens", async (request) => {
  const grant = (request.body as { grant?: unknown } | undefined)?.grant;
  const accessToken = await signBenchToken(privateKey, { clientId: "kwc_floor", grant: typeof grant === "string" ? grant : randomUUID(), kid });
  return { access_token: accessToken, token_type: "Bearer", expires_in: 3600 };
});

await app.listen({ port: 0, host: "127.0.0.1" });
serveChild((app.server.address() as AddressInfo).port, {}, () => app.close());
