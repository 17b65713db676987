import { createHash } from "node:crypto";
import { Kind, parse, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from "graphql";
import { isPlainObject, mediaType, refuse, singleParam, strictJson, strictJsonText, uncompressed, utf8Text, type CallContent, type Read } from "./content.js";
import type { Inspection, Operation } from "./operations.js";
import { readQueryLeniently } from "./query.js";

export const GRAPHQL_OPERATION_TYPES = ["query", "mutation", "subscription"] as const;
export type GraphqlOperationType = (typeof GRAPHQL_OPERATION_TYPES)[number];

// Far above any real document, low enough that parsing a hostile one stays cheap.
const MAX_TOKENS = 20_000;
/** The members of a GraphQL-over-HTTP request; anything else (documentId, doc_id, ...) names a document Keyward cannot see. */
const REQUEST_KEYS = new Set(["query", "operationName", "variables", "extensions"]);
/** Names servers use for stored documents: in the URL of a POST they could replace the body's document. */
const DOCUMENT_ID_KEYS = new Set(["documentId", "doc_id", "id", "queryId"]);
/** Both, lower-case, as readQueryLeniently names parameters. */
const URL_KEYS_READ_LENIENTLY = new Set([...REQUEST_KEYS, ...DOCUMENT_ID_KEYS].map((key) => key.toLowerCase()));
const LINE_SEPARATORS = /[\u2028\u2029]/;
type GraphqlRequest = { query: string; operationName: string | undefined };
/** One request of a call with its document parsed: what decide() reads root fields from, and response redaction aliases. */
export type ParsedGraphqlRequest = { document: DocumentNode; operationName: string | undefined };

/**
 * The root fields a GraphQL call would run, as `{ type, field }` per field: the real field name, never
 * the alias. Every operation in the document counts, whichever one `operationName` selects, so a
 * document is allowed only if all of it is. Anything Keyward cannot fully read is refused: persisted
 * queries it does not hold, a missing or unparsable document, several operations without an
 * operationName, unknown fragments, compressed or non-JSON bodies, and parameters given both in the URL
 * and in the body.
 */
export function inspectGraphql(call: CallContent): Inspection {
  const requests = parsedGraphql(call);
  if (!requests.ok) return requests;
  const operations: Operation[] = [];
  for (const request of requests.value) {
    const fields = rootFields(request);
    if (!fields.ok) return fields;
    operations.push(...fields.value);
  }
  return { ok: true, operations };
}

// Parsed once per call: decide() reads the documents, and response redaction reads them again (src/redaction/graphql-fields.ts).
const parsedCalls = new WeakMap<CallContent, Read<ParsedGraphqlRequest[]>>();

/** The call's GraphQL requests with their documents parsed, or why they cannot be read. */
export function parsedGraphql(call: CallContent): Read<ParsedGraphqlRequest[]> {
  const known = parsedCalls.get(call);
  if (known) return known;
  const requests = graphqlRequests(call);
  let parsed: Read<ParsedGraphqlRequest[]>;
  if (!requests.ok) parsed = requests;
  else {
    parsed = { ok: true, value: [] };
    for (const request of requests.value) {
      // graphql-java ends a comment at U+2028 and U+2029 (line terminators to it, not to the spec or graphql-js):
      // `serviceCreate # <U+2028> volumeDelete` would run a field Keyward read as a comment.
      if (LINE_SEPARATORS.test(request.query)) {
        parsed = refuse("GraphQL document with U+2028 or U+2029, which parsers disagree on");
        break;
      }
      try {
        parsed.value.push({ document: parse(request.query, { noLocation: true, maxTokens: MAX_TOKENS }), operationName: request.operationName });
      } catch {
        parsed = refuse("GraphQL document does not parse");
        break;
      }
    }
  }
  parsedCalls.set(call, parsed);
  return parsed;
}

function graphqlRequests(call: CallContent): Read<GraphqlRequest[]> {
  if (call.method === "GET" || call.method === "HEAD") {
    const url = new URLSearchParams(call.query);
    if (!call.body) return refuse("body was not read");
    if (call.body.length > 0) return refuse("GraphQL GET with a body");
    const unknown = [...url.keys()].find((k) => !REQUEST_KEYS.has(k));
    if (unknown !== undefined) return refuse(`unknown GraphQL parameter ${JSON.stringify(unknown.slice(0, 50))}`);
    // Rack 2 (Rails), Python < 3.9.2 and Go < 1.17 split parameters on `;` too: `query={a}%23;query=mutation{…}`
    // is one harmless document here (`#` starts a comment) and, last wins, the mutation there.
    if (call.query.includes(";")) return refuse("a ';' in a GraphQL GET: servers that split parameters on it read other parameters");
    const request: Record<string, unknown> = {};
    for (const key of ["query", "operationName", "extensions"]) {
      const value = singleParam(url, key);
      if (!value.ok) return value;
      if (value.value !== undefined) request[key] = value.value;
    }
    if (typeof request.extensions === "string") {
      // Duplicate keys refused as in a body: `persistedQuery` twice is two hashes, and parsers differ on which wins.
      const extensions = strictJsonText(request.extensions, "extensions parameter");
      if (!extensions.ok) return extensions;
      request.extensions = extensions.value;
    }
    const one = requestFrom(request);
    return one.ok ? { ok: true, value: [one.value] } : one;
  }

  // Some servers read GraphQL parameters from the URL even on POST, and Rails lets them win over the body's:
  // two sources could disagree. Read as leniently as any server might (`x=1;query=…` splits on `;` in Rack 2).
  if ([...readQueryLeniently(call.query).keys()].some((k) => URL_KEYS_READ_LENIENTLY.has(k))) {
    return refuse("GraphQL parameters in both the URL and the body");
  }
  if (!call.body) return refuse("body was not read");
  const plain = uncompressed(call.headers);
  if (!plain.ok) return plain;
  const type = mediaType(call.headers);
  if (!type.ok) return type;
  if (type.value === "application/graphql") {
    const text = utf8Text(call.body);
    return text.ok ? { ok: true, value: [{ query: text.value, operationName: undefined }] } : text;
  }
  if (type.value !== "application/json") return refuse(`unsupported content type ${type.value ?? "(none)"} for GraphQL`);
  const json = strictJson(call.body);
  if (!json.ok) return json;
  const batch = Array.isArray(json.value) ? json.value : [json.value];
  if (batch.length === 0) return refuse("empty GraphQL batch");
  const requests: GraphqlRequest[] = [];
  for (const item of batch) {
    const one = requestFrom(item);
    if (!one.ok) return one;
    requests.push(one.value);
  }
  return { ok: true, value: requests };
}

function requestFrom(item: unknown): Read<GraphqlRequest> {
  if (!isPlainObject(item)) return refuse("GraphQL request is not an object");
  const unknown = Object.keys(item).find((k) => !REQUEST_KEYS.has(k));
  if (unknown !== undefined) return refuse(`unknown GraphQL request member ${JSON.stringify(unknown.slice(0, 50))}`);
  const { query, operationName, extensions } = item;
  const persisted = isPlainObject(extensions) ? extensions.persistedQuery : undefined;
  if (typeof query !== "string" || query.trim() === "") {
    return refuse(persisted !== undefined ? "persisted query: Keyward cannot see the document" : "missing GraphQL query");
  }
  // With both a document and a hash, a server may run the document it stored under the hash.
  if (persisted !== undefined) {
    const hash = isPlainObject(persisted) ? persisted.sha256Hash : undefined;
    if (hash !== createHash("sha256").update(query, "utf8").digest("hex")) return refuse("persisted query hash does not match the query");
  }
  if (operationName !== undefined && operationName !== null && typeof operationName !== "string") {
    return refuse("operationName is not a string");
  }
  return { ok: true, value: { query, operationName: operationName ?? undefined } };
}

function rootFields(request: ParsedGraphqlRequest): Read<Operation[]> {
  const { document } = request;
  const fragments = new Map<string, FragmentDefinitionNode>();
  const operations = [];
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition);
    else if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      if (fragments.has(definition.name.value)) return refuse(`fragment ${definition.name.value} defined twice`);
      fragments.set(definition.name.value, definition);
    } else return refuse("GraphQL document has non-executable definitions");
  }
  if (operations.length === 0) return refuse("GraphQL document has no operation");
  if (operations.length > 1) {
    if (request.operationName === undefined) return refuse("several GraphQL operations and no operationName");
    const names = operations.map((o) => o.name?.value);
    if (names.includes(undefined)) return refuse("an anonymous GraphQL operation among several");
    if (new Set(names).size !== names.length) return refuse("GraphQL operation names are not unique");
  }
  if (request.operationName !== undefined && !operations.some((o) => o.name?.value === request.operationName)) {
    return refuse(`no GraphQL operation named ${JSON.stringify(request.operationName.slice(0, 100))}`);
  }

  const collector = new RootFieldCollector(fragments);
  const found: Operation[] = [];
  for (const operation of operations) {
    const fields = collector.collect(operation.selectionSet);
    if (!fields.ok) return fields;
    for (const field of fields.value.values()) found.push({ kind: "graphql", type: operation.operation, field });
  }
  return { ok: true, value: found };
}

/**
 * Root fields by response key (alias or name), through inline fragments and fragment spreads. Fields
 * with the same response key are merged by the server into one execution, so they count once; the
 * same key for two different fields is invalid and refused.
 */
class RootFieldCollector {
  readonly #memo = new Map<string, Map<string, string>>();
  readonly #inProgress = new Set<string>();

  constructor(private readonly fragments: Map<string, FragmentDefinitionNode>) {}

  collect(selectionSet: SelectionSetNode): Read<Map<string, string>> {
    const fields = new Map<string, string>();
    const add = (key: string, name: string): Read<true> => {
      const existing = fields.get(key);
      if (existing !== undefined && existing !== name) return refuse(`response key ${key} names two different fields`);
      fields.set(key, name);
      return { ok: true, value: true };
    };
    for (const selection of selectionSet.selections) {
      let inner: Read<Map<string, string>>;
      if (selection.kind === Kind.FIELD) {
        const added = add(selection.alias?.value ?? selection.name.value, selection.name.value);
        if (!added.ok) return added;
        continue;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        inner = this.collect(selection.selectionSet);
      } else {
        inner = this.#spread(selection.name.value);
      }
      if (!inner.ok) return inner;
      for (const [key, name] of inner.value) {
        const added = add(key, name);
        if (!added.ok) return added;
      }
    }
    return { ok: true, value: fields };
  }

  // Memoised, so a document that spreads fragments into fragments many times over stays linear.
  #spread(name: string): Read<Map<string, string>> {
    const known = this.#memo.get(name);
    if (known) return { ok: true, value: known };
    const fragment = this.fragments.get(name);
    if (!fragment) return refuse(`unknown fragment ${name}`);
    if (this.#inProgress.has(name)) return refuse(`fragment ${name} spreads itself`);
    this.#inProgress.add(name);
    const fields = this.collect(fragment.selectionSet);
    this.#inProgress.delete(name);
    if (fields.ok) this.#memo.set(name, fields.value);
    return fields;
  }
}
