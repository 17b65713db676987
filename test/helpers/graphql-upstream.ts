import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { buildSchema, graphql } from "graphql";

/**
 * A real GraphQL server (graphql-js over node:http) shaped like a hosting provider's API: volumes with
 * backups that `volumeDelete` wipes, as in the incident. Answers POST (JSON, batched arrays,
 * application/graphql) and GET ?query=, and runs persisted queries it knows by their sha256 hash.
 */
export async function startGraphqlUpstream() {
  const schema = buildSchema(`
    type Volume { id: ID! name: String! backups: [String!]! }
    type Service { id: ID! name: String! }
    type Query { volumes: [Volume!]! services: [Service!]! }
    type Mutation {
      serviceCreate(name: String!): Service!
      volumeDelete(volumeId: ID!): Boolean!
      volumeInstanceBackupDelete(volumeId: ID!): Boolean!
    }
  `);
  const state = {
    volumes: [{ id: "vol-1", name: "postgres-data", backups: ["daily-1", "daily-2"] }],
    services: [{ id: "svc-1", name: "api" }],
  };
  const rootValue = {
    volumes: () => state.volumes,
    services: () => state.services,
    serviceCreate: ({ name }: { name: string }) => {
      const service = { id: `svc-${state.services.length + 1}`, name };
      state.services.push(service);
      return service;
    },
    volumeDelete: ({ volumeId }: { volumeId: string }) => {
      state.volumes = state.volumes.filter((v) => v.id !== volumeId); // and its backups with it
      return true;
    },
    volumeInstanceBackupDelete: ({ volumeId }: { volumeId: string }) => {
      for (const v of state.volumes) if (v.id === volumeId) v.backups = [];
      return true;
    },
  };
  /** Documents the server stored earlier (automatic persisted queries): Keyward never saw them. */
  const persisted = new Map<string, string>();
  const persist = (query: string) => {
    const hash = createHash("sha256").update(query).digest("hex");
    persisted.set(hash, query);
    return hash;
  };

  type Received = { method: string; url: string; headers: Record<string, unknown>; body: Buffer };
  const received: Received[] = [];
  const run = async (request: { query?: string; operationName?: string; variables?: Record<string, unknown>; extensions?: { persistedQuery?: { sha256Hash?: string } } }) => {
    const source = request.query ?? persisted.get(request.extensions?.persistedQuery?.sha256Hash ?? "");
    if (!source) return { errors: [{ message: "PersistedQueryNotFound" }] };
    return graphql({ schema, source, rootValue, variableValues: request.variables, operationName: request.operationName });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const url = new URL(req.url ?? "/", "http://upstream");
      let result: unknown;
      if (req.method === "GET") {
        result = await run({ query: url.searchParams.get("query") ?? undefined, operationName: url.searchParams.get("operationName") ?? undefined });
      } else if (req.headers["content-type"]?.startsWith("application/graphql")) {
        result = await run({ query: body.toString("utf8") });
      } else {
        const parsed = JSON.parse(body.toString("utf8"));
        result = Array.isArray(parsed) ? await Promise.all(parsed.map(run)) : await run(parsed);
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(result));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    received,
    persist,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
