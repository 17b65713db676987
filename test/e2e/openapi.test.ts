import type { RouteOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Store, TestBroker } from "../helpers/broker.js";

// Every route the real server registers, seen through an onRoute hook installed the moment the app is
// created: routes colleagues add later are checked without anyone updating a list.
const registered = vi.hoisted(() => [] as RouteOptions[]);
vi.mock("fastify", async (importOriginal) => {
  const original = await importOriginal<typeof import("fastify")>();
  const create = (options?: object) => {
    const app = original.default(options);
    app.addHook("onRoute", (route) => void registered.push(route));
    return app;
  };
  return { ...original, default: create };
});

type OpenApiDocument = {
  openapi: string;
  paths: Record<string, Record<string, { tags?: string[]; security?: unknown[]; requestBody?: unknown; parameters?: unknown[] }>>;
};

/** A Fastify URL as the document spells it: `:name` → `{name}`, the trailing wildcard → `{path}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, "{$1}").replace(/\*$/, "{path}");

describe("OpenAPI", () => {
  let store: Store;
  let broker: TestBroker;
  let doc: OpenApiDocument;
  beforeAll(async () => {
    // Test files share their worker's modules (vitest.config.ts: isolate false): the server is loaded
    // afresh so that it imports the fastify mocked above.
    vi.resetModules();
    const { newStore, startBroker } = await import("../helpers/broker.js");
    store = newStore();
    broker = await startBroker(store);
    const res = await broker.http().get("/openapi.json");
    expect(res.status).toBe(200);
    doc = res.body;
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
    // The next test file in this worker gets the real fastify.
    vi.doUnmock("fastify");
    vi.resetModules();
  });

  it("is OpenAPI 3.1", () => {
    expect(doc.openapi).toBe("3.1.0");
  });

  it("documents every registered route and method", () => {
    const documented = registered.filter((route) => !route.schema?.hide);
    expect(documented.length).toBeGreaterThan(30);
    const missing: string[] = [];
    for (const route of documented) {
      const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => m.toLowerCase());
      const operations = doc.paths[openApiPath(route.url)];
      for (const method of methods) {
        // The HEAD route Fastify adds beside each GET answers like the GET and is documented by it.
        if (method === "head" && operations?.get) continue;
        if (!operations?.[method]) missing.push(`${method.toUpperCase()} ${route.url}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("hides only the reference's own pages and the console's files", () => {
    const hidden = registered.filter((route) => route.schema?.hide).map((route) => route.url);
    expect(hidden.length).toBeGreaterThan(0);
    for (const url of hidden) expect(url.startsWith("/docs") || url.startsWith("/console"), url).toBe(true);
  });

  it("describes request bodies from the same zod schemas, and who may call", () => {
    const createGrant = doc.paths["/v1/grants"]!.post!;
    expect(JSON.stringify(createGrant.requestBody)).toContain("maxTtlSeconds");
    expect(createGrant.security).toEqual([{ adminKey: [] }]);
    expect(doc.paths["/v1/tokens"]!.post!.security).toEqual([{ agentClient: [] }]);
    expect(doc.paths["/proxy/{upstream}/{path}"]!.delete!.security).toEqual([{ agentToken: [] }]);
    expect(JSON.stringify(doc.paths["/v1/audit"]!.get!.parameters)).toContain("pathPrefix");
  });

  it("serves a browsable reference at /docs", async () => {
    const page = await broker.http().get("/docs/").redirects(1);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/swagger/i);
    const spec = await broker.http().get("/docs/json");
    expect(spec.body.paths).toEqual(doc.paths);
  });
});
