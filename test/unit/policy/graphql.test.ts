import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { CallContent } from "../../../src/policy/content.js";
import { inspectGraphql } from "../../../src/policy/graphql.js";

const json = { "content-type": "application/json" };
const post = (body: unknown, headers: Record<string, string> = json, query = ""): CallContent => ({
  method: "POST",
  query,
  headers,
  body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8"),
});
const get = (query: string, body?: string): CallContent => ({
  method: "GET",
  query,
  headers: {},
  body: Buffer.from(body ?? "", "utf8"),
});
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/** The root fields found, as "type field", or the refusal reason. */
function fields(call: CallContent): string[] | string {
  const result = inspectGraphql(call);
  if (!result.ok) return result.reason;
  return result.operations.map((op) => (op.kind === "graphql" ? `${op.type} ${op.field}` : "?"));
}

describe("inspectGraphql: what a document runs", () => {
  const cases: [string, CallContent, string[]][] = [
    ["a query", post({ query: "{ project(id: 1) { name } services { id } }" }), ["query project", "query services"]],
    ["a named mutation", post({ query: "mutation M { volumeDelete(volumeId: 1) }" }), ["mutation volumeDelete"]],
    ["a subscription", post({ query: "subscription { logs }" }), ["subscription logs"]],
    ["the real field behind an alias", post({ query: "mutation { safe: volumeDelete(volumeId: 1) }" }), ["mutation volumeDelete"]],
    ["an alias named like another field", post({ query: "mutation { serviceCreate: volumeDelete(volumeId: 1) }" }), ["mutation volumeDelete"]],
    ["two aliases of one field run twice", post({ query: "mutation { a: volumeDelete(volumeId: 1) b: volumeDelete(volumeId: 2) }" }), ["mutation volumeDelete", "mutation volumeDelete"]],
    ["a repeated field merges into one", post({ query: "{ project { id } project { name } }" }), ["query project"]],
    ["an inline fragment on the root type", post({ query: "mutation { ... on Mutation { volumeDelete(volumeId: 1) } }" }), ["mutation volumeDelete"]],
    ["an inline fragment without a type", post({ query: "mutation { ... @include(if: true) { volumeDelete(volumeId: 1) } }" }), ["mutation volumeDelete"]],
    [
      "a named fragment spread",
      post({ query: "mutation { ...Wipe } fragment Wipe on Mutation { volumeDelete(volumeId: 1) }" }),
      ["mutation volumeDelete"],
    ],
    [
      "fragments spreading fragments",
      post({ query: "mutation { ...A } fragment A on Mutation { ...B serviceCreate } fragment B on Mutation { v: volumeDelete(volumeId: 1) }" }),
      ["mutation volumeDelete", "mutation serviceCreate"],
    ],
    ["a field skipped by a directive still counts", post({ query: "mutation { volumeDelete(volumeId: 1) @skip(if: true) }" }), ["mutation volumeDelete"]],
    [
      "every operation of the document, whichever is selected",
      post({ query: "query Read { project { id } } mutation Wipe { volumeDelete(volumeId: 1) }", operationName: "Read" }),
      ["query project", "mutation volumeDelete"],
    ],
    ["a batch: every request", post([{ query: "{ project { id } }" }, { query: "mutation { volumeDelete(volumeId: 1) }" }]), ["query project", "mutation volumeDelete"]],
    ["application/graphql: the body is the document", post("mutation { volumeDelete(volumeId: 1) }", { "content-type": "application/graphql" }), ["mutation volumeDelete"]],
    ["a charset parameter", post({ query: "{ a }" }, { "content-type": "application/json; charset=UTF-8" }), ["query a"]],
    ["GET with ?query=", get("query=" + encodeURIComponent("{ project { id } }")), ["query project"]],
    ["GET: a mutation is still a mutation", get("query=" + encodeURIComponent("mutation { volumeDelete(volumeId: 1) }")), ["mutation volumeDelete"]],
    ["GET: + is a space", get("query=%7B+project+%7B+id+%7D+%7D"), ["query project"]],
    [
      "a persisted query whose hash matches its document",
      post({ query: "{ a }", extensions: { persistedQuery: { version: 1, sha256Hash: sha256("{ a }") } } }),
      ["query a"],
    ],
    ["variables and operationName null are fine", post({ query: "query Q { a }", operationName: null, variables: null }), ["query a"]],
    ["introspection fields are fields", post({ query: "{ __schema { types { name } } __typename }" }), ["query __schema", "query __typename"]],
  ];
  it.each(cases)("%s", (_name, call, expected) => {
    expect(fields(call)).toEqual(expected);
  });
});

describe("inspectGraphql: what Keyward cannot fully read is refused", () => {
  const cases: [string, CallContent, RegExp][] = [
    ["a persisted query hash alone", post({ extensions: { persistedQuery: { version: 1, sha256Hash: "a".repeat(64) } } }), /persisted query/],
    ["a hash that does not match the document", post({ query: "{ a }", extensions: { persistedQuery: { version: 1, sha256Hash: sha256("{ b }") } } }), /hash does not match/],
    [
      "GET with persistedQuery twice in extensions",
      get("query=%7B+a+%7D&extensions=" + encodeURIComponent(`{"persistedQuery":{"sha256Hash":"${"b".repeat(64)}"},"persistedQuery":{"sha256Hash":"${sha256("{ a }")}"}}`)),
      /duplicate JSON key/,
    ],
    ["GET with extensions that are not JSON", get("query=%7B+a+%7D&extensions=%7Bx"), /extensions parameter is not valid JSON/],
    ["GET with only a persisted query", get("extensions=" + encodeURIComponent(JSON.stringify({ persistedQuery: { sha256Hash: "x" } }))), /persisted query/],
    ["a document id", post({ documentId: "abc" }), /unknown GraphQL request member/],
    ["a document id beside a query", post({ query: "{ a }", id: "abc" }), /unknown GraphQL request member/],
    ["GET with a document id", get("query=%7Ba%7D&doc_id=1"), /unknown GraphQL parameter/],
    ["no query", post({ variables: {} }), /missing GraphQL query/],
    ["an empty query", post({ query: "  " }), /missing GraphQL query/],
    ["a query that is not a string", post({ query: { a: 1 } }), /missing GraphQL query/],
    ["GET without a query", get(""), /missing GraphQL query/],
    ["a syntax error", post({ query: "mutation { volumeDelete(" }), /does not parse/],
    ["several operations without operationName", post({ query: "query A { a } mutation B { volumeDelete }" }), /no operationName/],
    ["an operationName that names nothing", post({ query: "query A { a }", operationName: "B" }), /no GraphQL operation named/],
    ["an anonymous operation among several", post({ query: "{ a } mutation B { volumeDelete }", operationName: "B" }), /anonymous/],
    ["two operations of one name", post({ query: "query A { a } mutation A { volumeDelete }", operationName: "A" }), /not unique/],
    ["an operationName that is not a string", post({ query: "{ a }", operationName: 1 }), /not a string/],
    ["only fragments", post({ query: "fragment F on Query { a }" }), /no operation/],
    ["type definitions", post({ query: "type T { a: Int } { a }" }), /non-executable/],
    ["an unknown fragment", post({ query: "mutation { ...Missing }" }), /unknown fragment/],
    ["a fragment cycle", post({ query: "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }" }), /spreads itself/],
    ["a fragment defined twice", post({ query: "{ ...A } fragment A on Query { a } fragment A on Query { b }" }), /defined twice/],
    ["one response key for two fields", post({ query: "mutation { x: serviceCreate x: volumeDelete }" }), /two different fields/],
    ["an empty batch", post([]), /empty GraphQL batch/],
    ["a batch member that is not an object", post([{ query: "{ a }" }, "mutation { volumeDelete }"]), /not an object/],
    ["a batch with one bad member", post([{ query: "{ a }" }, { extensions: { persistedQuery: {} } }]), /persisted query/],
    ["duplicate JSON keys", post('{"query":"{ a }","query":"mutation { volumeDelete }"}'), /duplicate JSON key/],
    ["duplicate keys spelled differently", post('{"query":"{ a }","qu\\u0065ry":"mutation { volumeDelete }"}'), /duplicate JSON key/],
    ["invalid JSON", post("{ query: 1 }"), /not valid JSON/],
    ["invalid UTF-8", post(Buffer.concat([Buffer.from('{"query":"{ a'), Buffer.from([0xff]), Buffer.from(' }"}')])), /not valid UTF-8/],
    ["a byte-order mark", post("\ufeff" + JSON.stringify({ query: "{ a }" })), /not valid JSON/],
    ["an unsupported content type", post({ query: "{ a }" }, { "content-type": "text/plain" }), /unsupported content type/],
    ["a form body", post("query=%7Ba%7D", { "content-type": "application/x-www-form-urlencoded" }), /unsupported content type/],
    ["no content type", post({ query: "{ a }" }, {}), /unsupported content type/],
    ["another charset", post({ query: "{ a }" }, { "content-type": "application/json; charset=utf-16" }), /unsupported charset/],
    ["a compressed body", post({ query: "{ a }" }, { ...json, "content-encoding": "gzip" }), /compressed/],
    ["POST with GraphQL parameters in the URL too", post({ query: "{ a }" }, json, "query=mutation%7BvolumeDelete%7D"), /both the URL and the body/],
    ["POST with a stored document id in the URL", post({ query: "{ a }" }, json, "documentId=abc"), /both the URL and the body/],
    ["POST with operationName in the URL", post({ query: "query A { a } mutation B { b }", operationName: "A" }, json, "operationName=B"), /both the URL and the body/],
    ["POST with a GraphQL parameter behind a `;` in the URL (Rack 2)", post({ query: "{ a }" }, json, "x=1;query=mutation%7BvolumeDelete%7D"), /both the URL and the body/],
    ["POST with a GraphQL parameter in another case in the URL", post({ query: "{ a }" }, json, "Query=mutation%7BvolumeDelete%7D"), /both the URL and the body/],
    ["GET with a parameter behind a `;` (Rack 2)", get("query=%7Ba%7D%23;query=mutation%7BvolumeDelete%7D"), /';' in a GraphQL GET/],
    ["GET with a body", get("query=%7Ba%7D", '{"query":"mutation { volumeDelete }"}'), /GET with a body/],
    ["GET with a repeated query", get("query=%7Ba%7D&query=mutation%7Bb%7D"), /repeated query/],
    ["a body that was not read", { method: "POST", query: "", headers: json, body: undefined }, /not read/],
    ["a comment graphql-java ends at U+2028", post({ query: "mutation { serviceCreate # \u2028 volumeDelete\n }" }), /U\+2028 or U\+2029/],
    ["U+2029 in a GET document", get("query=" + encodeURIComponent("{ a # \u2029 b\n }")), /U\+2028 or U\+2029/],
    ["a document over the token limit", post({ query: "{ " + "a ".repeat(25_000) + "}" }), /does not parse/],
  ];
  it.each(cases)("%s", (_name, call, reason) => {
    const result = fields(call);
    expect(typeof result, JSON.stringify(result)).toBe("string");
    expect(result).toMatch(reason);
  });
});

describe("inspectGraphql: hostile documents stay cheap", () => {
  it("a fragment spread many times over is read once per fragment", () => {
    // Each fragment spreads the next twice: 2^30 field visits without memoisation.
    const depth = 30;
    const defs = Array.from({ length: depth }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`);
    const query = `{ ...F0 } ${defs.join(" ")} fragment F${depth} on Query { a }`;
    const started = performance.now();
    expect(fields(post({ query }))).toEqual(["query a"]);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
