/**
 * The design's floor: what issue 14's guarantees cost alone, with none of Keyward's features around
 * them. A Fastify route on /proxy/bench/* that, like the broker,
 *
 * 1. reads the bearer token and looks it up in memory (the broker verifies a token once, then remembers it);
 * 2. refuses what the bench's grants deny (DELETE, paths outside /v1/ and /stream/), as 403;
 * 3. makes the decision's event durable before anything is forwarded: one JSON line, hash-chained
 *    (sha256), appended to a spool file with every call of the same event-loop turn and `fdatasync`'d
 *    once per group (the broker's spool, src/audit/spool.ts);
 * 4. forwards with undici, the upstream's key injected in place of the agent's token;
 * 5. makes the outcome's event durable the same way before it answers.
 *
 * No database, policy engine, budgets, redaction, metrics or logging. Against the plain proxy in the same
 * run, it says how much of the forwarding targets the guarantee leaves to everything else.
 */
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import { Agent, request as upstreamRequest } from "undici";
import { serveChild } from "./child.js";
import { openDurableLines } from "./durable-lines.js";
import { UPSTREAM_SECRET } from "./scenario.js";

const upstream = process.env.BENCH_UPSTREAM_URL;
if (!upstream) throw new Error("BENCH_UPSTREAM_URL is not set");
const PREFIX = "/proxy/bench";

const { durable, remove } = openDurableLines();

/** Tokens seen before (the broker checks a token's signature once, then remembers it until it expires). */
const tokens = new Map<string, { agent: string }>();
const dispatcher = new Agent({ keepAliveTimeout: 30_000 });

const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser("*", (_request, _payload, done) => done(null));

app.all(`${PREFIX}/*`, async (request: FastifyRequest, reply: FastifyReply) => {
  const startedAt = performance.now();
  const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? "")?.[1];
  if (!token) return reply.code(401).send({ error: "unauthenticated" });
  let agent = tokens.get(token);
  if (!agent) tokens.set(token, (agent = { agent: createHash("sha256").update(token).digest("hex").slice(0, 16) }));
  const path = request.url.slice(PREFIX.length);
  const event = { at: new Date().toISOString(), requestId: request.id, agent: agent.agent, method: request.method, path };
  if (request.method === "DELETE" || !(path.startsWith("/v1/") || path.startsWith("/stream/"))) {
    await durable({ ...event, decision: "deny", reason: "outside_grant" });
    return reply.code(403).send({ error: "denied" });
  }
  await durable({ ...event, decision: "allow" });
  const headers: Record<string, string> = { authorization: `Bearer ${UPSTREAM_SECRET}` };
  for (const [name, value] of Object.entries(request.headers)) {
    if (name !== "authorization" && name !== "host" && name !== "connection" && typeof value === "string") headers[name] = value;
  }
  const hasBody = Number(request.headers["content-length"] ?? 0) > 0;
  const answer = await upstreamRequest(upstream + path, {
    method: request.method as "GET" | "POST",
    headers,
    body: hasBody ? request.raw : undefined,
    dispatcher,
  });
  const body = Buffer.from(await answer.body.arrayBuffer());
  await durable({ ...event, kind: "response", status: answer.statusCode, latencyMs: Math.round(performance.now() - startedAt) });
  const contentType = answer.headers["content-type"];
  if (typeof contentType === "string") reply.header("content-type", contentType);
  return reply.code(answer.statusCode).send(body);
});

await app.listen({ port: 0, host: "127.0.0.1" });
serveChild((app.server.address() as AddressInfo).port, {}, async () => {
  await app.close();
  await dispatcher.close();
  remove();
});
