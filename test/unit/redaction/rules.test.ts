import { Readable } from "node:stream";
import { parse } from "graphql";
import { describe, expect, it } from "vitest";
import { DETECTOR_NAMES, DetectorStream, detectorMatches, MAX_MATCH_BYTES, type DetectorName } from "../../../src/redaction/detectors.js";
import { graphqlFieldValues, selectsField } from "../../../src/redaction/graphql-fields.js";
import { compileJsonSelector, selectNodes } from "../../../src/redaction/json-path.js";
import { leavesOf, parseJsonTree, replaceLeaves } from "../../../src/redaction/json-tree.js";
import { compileRedaction, NO_REDACTION, REDACTED } from "../../../src/redaction/redaction.js";
import { redactResponseWithRules, redactStructured, WHOLE_BODY_BYTES, type ResponseOutcome } from "../../../src/redaction/response.js";
import { planResponseRedaction, type ResponsePlan } from "../../../src/redaction/rules.js";
import type { GrantPolicy, ProxyRequest, TargetPolicy } from "../../../src/policy/decide.js";
import { normalisePath } from "../../../src/policy/paths.js";

const QUOTED = JSON.stringify(REDACTED);

/** The text with the selector's values redacted, as a response would be. */
function redactJson(text: string, selector: string): string {
  const compiled = compileJsonSelector(selector);
  if (!compiled.ok) throw new Error(compiled.reason);
  const tree = parseJsonTree(text)!;
  return replaceLeaves(text, selectNodes(tree, compiled.selector).flatMap((n) => leavesOf(n)), QUOTED).text;
}

describe("JSON path selectors", () => {
  it("select members, elements, wildcards and members at any depth", () => {
    const text = `[{"key":"DATABASE_URL","value":"postgres://u:p@h/db"},{"key":"PORT","value":5432}]`;
    expect(redactJson(text, "$[*].value")).toBe(`[{"key":"DATABASE_URL","value":${QUOTED}},{"key":"PORT","value":${QUOTED}}]`);
    expect(redactJson(text, "$[1].value")).toBe(`[{"key":"DATABASE_URL","value":"postgres://u:p@h/db"},{"key":"PORT","value":${QUOTED}}]`);
    expect(redactJson(`{"a":{"b":{"secret":"x"}},"secret":["y",true,null]}`, "$..secret")).toBe(
      `{"a":{"b":{"secret":${QUOTED}}},"secret":[${QUOTED},true,null]}`,
    );
    expect(redactJson(`{"env-vars":{"A":"1","B":"2"}}`, `$["env-vars"].*`)).toBe(`{"env-vars":{"A":${QUOTED},"B":${QUOTED}}}`);
    expect(redactJson(`{"it's":"v"}`, `$['it\\'s']`)).toBe(`{"it's":${QUOTED}}`);
  });

  it("leave every other byte as sent: spacing, key order, and numbers beyond double precision", () => {
    const text = `{ "id" : 12345678901234567890123, "list":[ {"value": "s1" } ,{"value":"s2"}],\n "n": 1.50e3 }`;
    expect(redactJson(text, "$.list[*].value")).toBe(`{ "id" : 12345678901234567890123, "list":[ {"value": ${QUOTED} } ,{"value":${QUOTED}}],\n "n": 1.50e3 }`);
  });

  it("a selected object or array is redacted whole, its structure kept; escapes inside strings are read correctly", () => {
    expect(redactJson(`{"v":{"A":"x\\"}y","B":[1,"z"],"C":false}}`, "$.v")).toBe(`{"v":{"A":${QUOTED},"B":[${QUOTED},${QUOTED}],"C":false}}`);
  });

  it("refuses what is not a selector", () => {
    for (const bad of ["value", "$.", "$[", "$[-1]", "$.a b", "$..", "$['x]"]) expect(compileJsonSelector(bad).ok, bad).toBe(false);
  });

  it("a text that is not JSON, or nests too deep, has no tree", () => {
    expect(parseJsonTree("{'a':1}")).toBeNull();
    expect(parseJsonTree("[".repeat(2000) + "]".repeat(2000))).toBeNull();
  });
});

describe("GraphQL result fields", () => {
  const doc = (query: string, operationName?: string) => [{ document: parse(query), operationName }];
  const fields = new Set(["variables"]);

  it("are found by field name whatever the alias, at any depth, through fragments", () => {
    const requests = doc(`
      query Edit { userVariables: variables(serviceId: "s") ...Env }
      fragment Env on Query { environment(id: "e") { ... on Environment { env: variables { edges { node { name } } } } } }`);
    const result = `{"data":{"userVariables":{"DATABASE_URL":"postgres://u:pw@db/app","PORT":"5432"},"environment":{"env":{"edges":[{"node":{"name":"A"}}]}},"variables":"not selected"}}`;
    const tree = parseJsonTree(result)!;
    const found = graphqlFieldValues(requests, tree, fields)!;
    const out = replaceLeaves(result, found.flatMap((n) => leavesOf(n)), QUOTED).text;
    expect(out).toBe(
      `{"data":{"userVariables":{"DATABASE_URL":${QUOTED},"PORT":${QUOTED}},"environment":{"env":{"edges":[{"node":{"name":${QUOTED}}}]}},"variables":"not selected"}}`,
    );
  });

  it("an alias named like the field, on another field, is not redacted; a document that never selects the field is not read", () => {
    const requests = doc(`{ variables: projectName  project { name } }`);
    expect(selectsField(requests, fields)).toBe(false);
    expect(graphqlFieldValues(requests, parseJsonTree(`{"data":{"variables":"my-app","project":{"name":"p"}}}`)!, fields)).toEqual([]);
  });

  it("a batch is matched result by result; a result shaped otherwise than the requests is refused (null)", () => {
    const requests = [...doc(`{ a: variables }`), ...doc(`{ b: variables }`)];
    const batch = parseJsonTree(`[{"data":{"a":{"K":"1"}}},{"data":{"b":{"K":"2"}}}]`)!;
    expect(graphqlFieldValues(requests, batch, fields)).toHaveLength(2);
    expect(graphqlFieldValues(requests, parseJsonTree(`{"data":{"a":{}}}`)!, fields)).toBeNull();
    expect(graphqlFieldValues(doc(`query A { variables } query B { variables }`), parseJsonTree(`{"data":{}}`)!, fields)).toBeNull();
  });

  it("fragments spread in a circle end", () => {
    const requests = doc(`{ ...A } fragment A on Query { ...B } fragment B on Query { ...A variables }`);
    expect(graphqlFieldValues(requests, parseJsonTree(`{"data":{"variables":{"K":"v"}}}`)!, fields)).toHaveLength(1);
  });
});

describe("detectors", () => {
  const samples: Record<DetectorName, string> = {
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAx2Y8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\nbbbb+/==\\n-----END RSA PRIVATE KEY-----",
    "aws-access-key": "AKIAQ3EGUQ4ZKZ5VEXAM",
    "github-token": "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4",
    "gitlab-token": "glpat-" + "xY12_ab34-CD56ef78GH",
    "slack-token": "xoxb-1234567890-1234567890123-abcdefABCDEF1234567890ab",
    "stripe-key": "sk_live_" + "51HxYzAbCdEfGhIjKlMnOp",
    "google-api-key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "npm-token": "npm_" + "a".repeat(18) + "B".repeat(18),
    "openai-key": "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" + "T3BlbkFJ" + "k1L2m3N4o5P6q7R8s9T0",
    "anthropic-key": "sk-ant-api03-" + "x".repeat(90) + "AA",
    jwt: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "connection-string": "postgres://app:S3cr3t-Pa55@db.internal:5432/app",
  };

  it("every detector finds its format inside a JSON string, and the JSON stays JSON", () => {
    expect(Object.keys(samples).sort()).toEqual([...DETECTOR_NAMES].sort());
    for (const name of DETECTOR_NAMES) {
      const text = JSON.stringify({ note: "before", value: samples[name], after: "tail" }).replace(/\\\\n/g, "\\n");
      const ranges = detectorMatches([name], text);
      expect(ranges, name).toHaveLength(1);
      const redacted = text.slice(0, ranges[0]!.start) + REDACTED + text.slice(ranges[0]!.end);
      expect(() => JSON.parse(redacted), name).not.toThrow();
      expect(JSON.parse(redacted).after, name).toBe("tail");
    }
  });

  it("a connection string keeps its user and host; only the password goes", () => {
    const text = `DATABASE_URL=${samples["connection-string"]} REDIS=rediss://:tok3n@cache:6380`;
    const ranges = detectorMatches(["connection-string"], text);
    expect(ranges.map((r) => text.slice(r.start, r.end))).toEqual(["S3cr3t-Pa55", "tok3n"]);
  });

  it("ordinary text is left alone", () => {
    const text = "the AKIA prefix, ghp_short, eyJ alone, https://example.com/path, user@example.com, sk_live_";
    expect(detectorMatches(DETECTOR_NAMES, text)).toEqual([]);
  });

  it("the stream finds secrets across every chunk boundary and holds back a bounded window", async () => {
    const secret = samples["github-token"];
    const filler = "x ".repeat(MAX_MATCH_BYTES);
    const body = Buffer.from(`${filler}${secret} and ${samples["private-key"]} ${filler}${secret}`);
    for (const size of [1, 7, 4096, 65536]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < body.length; at += size) chunks.push(body.subarray(at, at + size));
      const stream = new DetectorStream(["github-token", "private-key"], async () => {});
      let maxHeld = 0;
      let released = 0;
      const out: Buffer[] = [];
      stream.on("data", (c: Buffer) => {
        out.push(c);
        released += c.length;
      });
      let written = 0;
      for (const chunk of chunks) {
        stream.write(chunk);
        written += chunk.length;
        maxHeld = Math.max(maxHeld, written - released);
      }
      stream.end();
      await new Promise((r) => stream.on("end", r));
      const text = Buffer.concat(out).toString("latin1");
      expect(text, `chunks of ${size}`).not.toContain(secret);
      expect(text).not.toContain("MIIEowIBAAKCAQEA");
      expect(text.split(REDACTED)).toHaveLength(4);
      expect(stream.counts).toEqual(new Map([["github-token", 2], ["private-key", 1]]));
      expect(maxHeld).toBeLessThanOrEqual(2 * MAX_MATCH_BYTES + size + MAX_MATCH_BYTES);
    }
  });
});

describe("redactStructured", () => {
  const plan = (json: string[]): ResponsePlan => ({
    detectors: [],
    json: json.map((j, i) => {
      const c = compileJsonSelector(j);
      if (!c.ok) throw new Error(c.reason);
      return { label: `redact[${i}]`, selector: c.selector };
    }),
    graphql: [],
    optedOut: [],
  });

  it("counts each value once, under the first rule that selected it", () => {
    const out = redactStructured(Buffer.from(`{"a":{"s":"1","t":"2"}}`), plan(["$.a.s", "$.a"]));
    expect(out.body.toString()).toBe(`{"a":{"s":${QUOTED},"t":${QUOTED}}}`);
    expect(out.byRule).toEqual({ "redact[0]": 1, "redact[1]": 1 });
  });

  it("passes an empty body, and refuses a body that is not JSON or not UTF-8", () => {
    expect(redactStructured(Buffer.alloc(0), plan(["$"])).body.length).toBe(0);
    expect(() => redactStructured(Buffer.from("<html>error</html>"), plan(["$"]))).toThrow(/could not be read/);
    expect(() => redactStructured(Buffer.from([0x22, 0xff, 0x22]), plan(["$"]))).toThrow(/could not be read/);
  });
});

describe("redactResponseWithRules", () => {
  const selector = compileJsonSelector("$.s");
  const plan: ResponsePlan = { detectors: [], json: [{ label: "redact[0]", selector: selector.ok ? selector.selector : [] }], graphql: [], optedOut: ["render.envVars"] };

  it("a body read whole goes out with its exact length, recorded first; an empty one claims no length", async () => {
    const outcomes: ResponseOutcome[] = [];
    const record = async (o: ResponseOutcome) => void outcomes.push(o);
    const full = await redactResponseWithRules(NO_REDACTION, plan, { method: "GET", status: 200, headers: { "content-length": "9" }, body: Readable.from([Buffer.from(`{"s":"x"}`)]) }, record);
    expect(outcomes).toEqual([{ redactions: 1, complete: true, byRule: { "redact[0]": 1 }, optedOut: ["render.envVars"] }]);
    expect(full.headers["content-length"]).toBe(String(`{"s":${QUOTED}}`.length));
    const empty = await redactResponseWithRules(NO_REDACTION, plan, { method: "GET", status: 200, headers: { "content-length": "0" }, body: Readable.from([]) }, record);
    expect(empty.headers["content-length"]).toBeUndefined();
  });
});

describe("redactResponseWithRules: small answers read whole", () => {
  const secret = "sk-whole-body-0123456789";
  const redaction = compileRedaction([secret]);
  const noRules: ResponsePlan = { detectors: [], json: [], graphql: [], optedOut: [] };
  const answer = (text: string, extra: Partial<{ method: string; status: number; headers: Record<string, string> }> = {}) => ({
    method: "GET",
    status: 200,
    headers: { "content-length": String(Buffer.byteLength(text)), location: `/next?k=${secret}` },
    body: Readable.from([Buffer.from(text.slice(0, 5)), Buffer.from(text.slice(5))]),
    ...extra,
  });

  it("goes out as one buffer of its exact length, secrets replaced in body and headers, recorded before it is returned", async () => {
    const events: string[] = [];
    const text = `{"echo":"Bearer ${secret}","again":"${secret}"}`;
    const shown = await redactResponseWithRules(redaction, noRules, answer(text), async (o) => void events.push(`recorded ${o.redactions} ${o.complete}`));
    events.push("returned");
    expect(Buffer.isBuffer(shown.body)).toBe(true);
    const expected = `{"echo":"Bearer ${REDACTED}","again":"${REDACTED}"}`;
    expect((shown.body as Buffer).toString()).toBe(expected);
    expect(shown.headers).toEqual({ "content-length": String(expected.length), location: `/next?k=${REDACTED}` });
    expect(events).toEqual(["recorded 3 true", "returned"]);
  });

  it("streams what has no body, is encoded, larger, or of unknown length", async () => {
    const record = async () => {};
    const text = `{"k":"${secret}"}`;
    const streamed = [
      answer(text, { method: "HEAD" }),
      answer(text, { status: 204 }),
      answer(text, { headers: { "content-length": String(text.length), "content-encoding": "br" } }),
      answer(text, { headers: { "content-length": String(WHOLE_BODY_BYTES + 1) } }),
      answer(text, { headers: {} }),
    ];
    for (const a of streamed) {
      const shown = await redactResponseWithRules(redaction, noRules, a, record).catch((err: Error) => err);
      // (The brotli one is refused as it streams: its body is not brotli.)
      if (shown instanceof Error) continue;
      expect(Buffer.isBuffer(shown.body), JSON.stringify(a.headers) + a.method + a.status).toBe(false);
    }
  });

  it("a body that ends short of its declared length is a 502, not a truncated answer", async () => {
    const cut = new Readable({ read() {} });
    cut.push(Buffer.from(`{"k":`));
    setImmediate(() => cut.destroy(new Error("socket hang up")));
    const outcome = redactResponseWithRules(redaction, noRules, { method: "GET", status: 200, headers: { "content-length": "100" }, body: cut }, async () => {});
    await expect(outcome).rejects.toMatchObject({ status: 502 });
  });

  it("a body destroyed without an error (the call aborted) is a 502; one that stalls past the body timeout a 504", async () => {
    const aborted = new Readable({ read() {} });
    aborted.push(Buffer.from(`{"k":`));
    setImmediate(() => aborted.destroy());
    const cut = redactResponseWithRules(redaction, noRules, { method: "GET", status: 200, headers: { "content-length": "100" }, body: aborted }, async () => {});
    await expect(cut).rejects.toMatchObject({ status: 502, code: "upstream_unreachable" });
    const stalled = new Readable({ read() {} });
    setImmediate(() => stalled.destroy(Object.assign(new Error("body timeout"), { code: "UND_ERR_BODY_TIMEOUT" })));
    const late = redactResponseWithRules(redaction, noRules, { method: "GET", status: 200, headers: { "content-length": "100" }, body: stalled }, async () => {});
    await expect(late).rejects.toMatchObject({ status: 504 });
  });
});

describe("redaction stream input", () => {
  it("Readable bodies of many chunks reach the detector intact", async () => {
    const stream = new DetectorStream(["aws-access-key"], async () => {});
    const parts = ["AKIAQ3EG", "UQ4ZKZ5V", "EXAM rest"];
    const out: Buffer[] = [];
    for await (const c of Readable.from(parts.map((p) => Buffer.from(p))).pipe(stream)) out.push(c as Buffer);
    expect(Buffer.concat(out).toString()).toBe(`${REDACTED} rest`);
  });
});

describe("planResponseRedaction", () => {
  const target = (protocol: "http" | "graphql", presets: string[], basePath: string[] = []): TargetPolicy => ({
    environment: "staging",
    environmentRequiresApproval: false,
    protocol,
    basePath,
    presets,
  });
  const grant = (extra: Partial<GrantPolicy>): GrantPolicy => ({
    id: "g", upstream: "u", methods: ["GET", "POST"], paths: ["/**"], deny: [], agentIds: ["a"], environments: ["staging"],
    requiresApproval: false, destructive: [], requiresApprovalFor: [], graphql: null, jsonrpc: null, allowProtected: [], budgets: null,
    ...extra,
  });
  const call = (method: string, rawPath: string, to: TargetPolicy, query?: string): ProxyRequest => {
    const path = normalisePath(rawPath);
    if (!path.ok) throw new Error(path.reason);
    const body = query === undefined ? undefined : Buffer.from(JSON.stringify({ query }));
    return { upstream: "u", method, path: path.path, target: to, query: "", headers: { "content-type": "application/json" }, body };
  };
  const labels = (plan: ResponsePlan) => [...plan.json, ...plan.graphql, ...plan.detectors].map((r) => r.label);

  it("applies a grant's rules by method and path, and a preset's by the upstream's full path", () => {
    const g = grant({ redact: [{ path: "/services/*/env-vars", method: "GET", json: "$[*].value" }, { detector: "jwt" }] });
    const render = target("http", ["render"], ["v1"]);
    expect(labels(planResponseRedaction(g, call("GET", "/services/s1/env-vars", render)))).toEqual(["redact[0]", "render.envVars", "redact[1]"]);
    expect(labels(planResponseRedaction(g, call("PUT", "/services/s1/env-vars", render)))).toEqual(["render.envVars", "redact[1]"]);
    expect(labels(planResponseRedaction(g, call("GET", "/services/s1", render)))).toEqual(["redact[1]"]);
    // Case and encoding do not walk around a rule that adds protection.
    expect(labels(planResponseRedaction(g, call("GET", "/SERVICES/s1/env%2Dvars", render)))).toContain("redact[0]");
  });

  it("a preset field rule applies only to documents that select the field; an opt-out is reported only where it mattered", () => {
    const railway = target("graphql", ["railway"]);
    const selecting = call("POST", "/graphql/v2", railway, `{ v: variables(serviceId: "s") }`);
    const other = call("POST", "/graphql/v2", railway, `{ services { name } }`);
    expect(labels(planResponseRedaction(grant({}), selecting))).toEqual(["railway.variables"]);
    expect(labels(planResponseRedaction(grant({}), other))).toEqual([]);
    const optedOut = grant({ redactOptOut: ["railway.variables"] });
    expect(planResponseRedaction(optedOut, selecting)).toMatchObject({ graphql: [], optedOut: ["railway.variables"] });
    expect(planResponseRedaction(optedOut, other).optedOut).toEqual([]);
  });

  it("a field rule on a call whose document could not be read plans a refusal, not a pass", () => {
    const plan = planResponseRedaction(grant({ redact: [{ graphqlField: "secret" }] }), call("POST", "/graphql", target("graphql", []), "{ not closed"));
    expect(plan.graphql).toEqual([{ label: "redact[0]", fields: new Set(["secret"]), requests: null }]);
    expect(() => redactStructured(Buffer.from(`{"data":{"secret":"x"}}`), plan)).toThrow(/could not be read/);
  });
});
