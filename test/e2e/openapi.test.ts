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

  it("hides only the reference's own pages, the console's files and the OAuth endpoints' 405 answers", () => {
    const hidden = registered.filter((route) => route.schema?.hide);
    expect(hidden.length).toBeGreaterThan(0);
    for (const { url, method } of hidden) {
      const oauth405 = url.startsWith("/oauth2/") && !String(method).includes("POST");
      expect(url.startsWith("/docs") || url.startsWith("/console") || oauth405, url).toBe(true);
    }
  });

  it("describes request bodies from the same zod schemas, and who may call", () => {
    const createGrant = doc.paths["/v1/grants"]!.post!;
    expect(JSON.stringify(createGrant.requestBody)).toContain("maxTtlSeconds");
    expect(createGrant.security).toEqual([{ adminKey: [] }]);
    expect(doc.paths["/v1/tokens"]!.post!.security).toEqual([{ agentClient: [] }]);
    expect(doc.paths["/proxy/{upstream}/{path}"]!.delete!.security).toEqual([{ agentToken: [] }]);
    expect(JSON.stringify(doc.paths["/v1/audit"]!.get!.parameters)).toContain("pathPrefix");
  });

  it("describes the OAuth endpoints' form bodies from the zod schemas their handlers parse with", () => {
    type Schema = { properties?: Record<string, { enum?: string[] }>; required?: string[]; additionalProperties?: boolean; oneOf?: Schema[] };
    const form = (path: string) => {
      const body = doc.paths[path]!.post!.requestBody as { content: Record<string, { schema: Schema }> };
      // Form-encoded only, as the endpoints accept (RFC 6749 §3.2), not the JSON the rest of the API takes.
      expect(Object.keys(body.content), path).toEqual(["application/x-www-form-urlencoded"]);
      return body.content["application/x-www-form-urlencoded"]!.schema;
    };
    const clientAuth = ["client_id", "client_secret", "client_assertion_type", "client_assertion"];

    const token = form("/oauth2/token");
    const [clientCredentials, exchange] = token.oneOf!;
    expect(token.oneOf!.map((variant) => variant.properties!.grant_type!.enum)).toEqual([
      ["client_credentials"],
      ["urn:ietf:params:oauth:grant-type:token-exchange"],
    ]);
    expect(Object.keys(clientCredentials!.properties!)).toEqual(["grant_type", "scope", "authorization_details", "resource", ...clientAuth]);
    expect(clientCredentials!.required).toEqual(["grant_type"]);
    expect(exchange!.required).toEqual(["grant_type", "subject_token", "subject_token_type"]);
    expect(exchange!.properties!.subject_token_type!.enum).toEqual(["urn:ietf:params:oauth:token-type:access_token"]);
    expect(exchange!.properties).toHaveProperty("client_assertion");
    // Unknown parameters are refused, and the document says so.
    for (const variant of token.oneOf!) expect(variant.additionalProperties).toBe(false);

    const revoke = form("/oauth2/revoke");
    expect(Object.keys(revoke.properties!)).toEqual(["token", "token_type_hint", ...clientAuth]);
    expect(revoke.required).toEqual(["token"]);
    // Introspection takes an admin key, or an agent's client authentication (for its own tokens).
    const introspect = form("/oauth2/introspect");
    expect(Object.keys(introspect.properties!)).toEqual(["token", "token_type_hint", ...clientAuth]);
    expect(introspect.required).toEqual(["token"]);
    expect(doc.paths["/oauth2/introspect"]!.post!.security).toEqual([{ adminKey: [] }, { agentClient: [] }]);
  });

  it("documenting the OAuth forms leaves their errors in the RFC 6749 §5.2 shape, client authentication first", async () => {
    const post = (path: string, form: string, authorization?: string) => {
      const req = broker.http().post(path).type("form");
      return (authorization ? req.set("authorization", authorization) : req).send(form);
    };
    const oauthError = (error: string) => ({ error, error_description: expect.any(String) });

    // An unknown parameter from an unauthenticated client: invalid_client, not a validation error.
    const noClient = await post("/oauth2/token", "grant_type=client_credentials&resource=x");
    expect(noClient.status).toBe(401);
    expect(noClient.body).toEqual(oauthError("invalid_client"));
    const unsupported = await post("/oauth2/token", "grant_type=password&username=x");
    expect(unsupported.status).toBe(400);
    expect(unsupported.body).toEqual(oauthError("unsupported_grant_type"));
    const revoke = await post("/oauth2/revoke", "token_type_hint=access_token");
    expect(revoke.status).toBe(401);
    expect(revoke.body).toEqual(oauthError("invalid_client"));
    const introspect = await post("/oauth2/introspect", "token_type_hint=access_token&extra=1", `Bearer ${broker.adminKey}`);
    expect(introspect.status).toBe(400);
    expect(introspect.body).toEqual(oauthError("invalid_request"));
    expect(introspect.body.error_description).toMatch(/token/);
    expect(introspect.headers["cache-control"]).toBe("no-store");
    // A live check that introspection still reads the form.
    const inactive = await post("/oauth2/introspect", "token=not-a-token", `Bearer ${broker.adminKey}`);
    expect(inactive.body).toEqual({ active: false });
  });

  it("serves a browsable reference at /docs", async () => {
    const page = await broker.http().get("/docs/").redirects(1);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/swagger/i);
    const spec = await broker.http().get("/docs/json");
    expect(spec.body.paths).toEqual(doc.paths);
  });
});
