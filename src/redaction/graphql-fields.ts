import { Kind, visit, type DocumentNode, type FragmentDefinitionNode, type OperationDefinitionNode, type SelectionSetNode } from "graphql";
import type { ParsedGraphqlRequest } from "../policy/graphql.js";
import type { JsonNode } from "./json-tree.js";

/**
 * GraphQL result fields to redact, found by walking the request's own document alongside its result:
 * a field is known by its name, whatever alias the document gave it, at any depth, through inline
 * fragments and fragment spreads. A result holds only what its document selected, so a document that
 * never names the field cannot return it.
 */

/** Whether any of the documents selects a field with one of these names, anywhere. */
export function selectsField(requests: readonly ParsedGraphqlRequest[], fields: ReadonlySet<string>): boolean {
  return requests.some(({ document }) => {
    let found = false;
    visit(document, {
      Field(node) {
        if (fields.has(node.name.value)) found = true;
      },
    });
    return found;
  });
}

/**
 * The result values of the named fields in a GraphQL response (one result, or a batch of them in the
 * order of the requests), or null when the response is not shaped as the requests say it must be.
 */
export function graphqlFieldValues(requests: readonly ParsedGraphqlRequest[], response: JsonNode, fields: ReadonlySet<string>): JsonNode[] | null {
  const results = requests.length === 1 && response.kind === "object" ? [response] : response.kind === "array" ? response.items : null;
  if (!results || results.length !== requests.length) return null;
  const found: JsonNode[] = [];
  for (const [i, result] of results.entries()) {
    if (result.kind !== "object") return null;
    const request = requests[i]!;
    const operation = operationOf(request);
    if (!operation) return null;
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of request.document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    for (const [key, data] of result.entries) {
      if (key === "data") collect(operation.selectionSet, data, { fragments, fields, found });
    }
  }
  return found;
}

function operationOf({ document, operationName }: { document: DocumentNode; operationName: string | undefined }): OperationDefinitionNode | undefined {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  return operationName === undefined ? (operations.length === 1 ? operations[0] : undefined) : operations.find((o) => o.name?.value === operationName);
}

type Walk = { fragments: Map<string, FragmentDefinitionNode>; fields: ReadonlySet<string>; found: JsonNode[] };

/**
 * The values under a selection set: lists are walked element by element; a spread fragment already being
 * expanded at this level is skipped (a document spreading fragments in a circle selects nothing more).
 */
function collect(selectionSet: SelectionSetNode, value: JsonNode, walk: Walk, expanding: ReadonlySet<string> = new Set()): void {
  if (value.kind === "array") {
    for (const item of value.items) collect(selectionSet, item, walk, expanding);
    return;
  }
  if (value.kind !== "object") return;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet, value, walk, expanding);
    else if (selection.kind === Kind.FRAGMENT_SPREAD) {
      const name = selection.name.value;
      const fragment = walk.fragments.get(name);
      if (fragment && !expanding.has(name)) collect(fragment.selectionSet, value, walk, new Set([...expanding, name]));
    } else {
      const key = selection.alias?.value ?? selection.name.value;
      for (const [member, child] of value.entries) {
        if (member !== key) continue;
        if (walk.fields.has(selection.name.value)) walk.found.push(child);
        else if (selection.selectionSet) collect(selection.selectionSet, child, walk);
      }
    }
  }
}
