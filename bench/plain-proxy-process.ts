/**
 * The baseline a user would pick instead of Keyward: a plain @fastify/http-proxy forwarding
 * /proxy/bench/* to the same upstream, with no checks, no audit and no logging.
 */
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import httpProxy from "@fastify/http-proxy";
import { serveChild } from "./child.js";

const upstream = process.env.BENCH_UPSTREAM_URL;
if (!upstream) throw new Error("BENCH_UPSTREAM_URL is not set");

const app = Fastify({ logger: false });
await app.register(httpProxy, { upstream, prefix: "/proxy/bench" });
await app.listen({ port: 0, host: "127.0.0.1" });
serveChild((app.server.address() as AddressInfo).port, {}, () => app.close());
