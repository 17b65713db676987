import { describe, expect, it } from "vitest";
import { queryKind } from "../../../../src/upstreams/credentials/query.js";
import { anyGrant, context, outgoing } from "./request.js";

const credential = (secret: string) => queryKind.compile({ type: "query", param: "api_key" }, secret, context());

describe("query kind", () => {
  // [query before, secret, query after]
  const cases: [string, string, string][] = [
    ["", "sk-1", "?api_key=sk-1"],
    ["x=1", "sk-1", "?x=1&api_key=sk-1"],
    ["x=1&y=2", "sk-1", "?x=1&y=2&api_key=sk-1"],
    // the agent's own value for the parameter is dropped, however often or however spelt
    ["api_key=agent", "sk-1", "?api_key=sk-1"],
    ["api_key=a&x=1&api_key=b", "sk-1", "?x=1&api_key=sk-1"],
    ["api_key", "sk-1", "?api_key=sk-1"],
    ["api_key=", "sk-1", "?api_key=sk-1"],
    ["api%5Fkey=agent&x=1", "sk-1", "?x=1&api_key=sk-1"],
    ["%61pi_key=agent", "sk-1", "?api_key=sk-1"],
    // and any name a server reads as it (REQ-42): an array, another case, PHP's mangling, a NUL, decoded twice
    ["api_key[]=a&API_KEY=b&Api_Key=c&x=1", "sk-1", "?x=1&api_key=sk-1"],
    ["api_key%5B0%5D=a&api.key=b&api+key=c&api_key%00=d&api%255Fkey=e&%20api_key=f", "sk-1", "?api_key=sk-1"],
    // similar names are not the parameter
    ["api_key2=a&x[api_key]=b&apikey=c", "sk-1", "?api_key2=a&x%5Bapi_key%5D=b&apikey=c&api_key=sk-1"],
    // the secret is encoded as a value, never able to add parameters of its own
    ["", "a&b=c", "?api_key=a%26b%3Dc"],
    ["", "a b+c", "?api_key=a+b%2Bc"],
    ["", "a#b?c", "?api_key=a%23b%3Fc"],
    ["", "ünï", "?api_key=%C3%BCn%C3%AF"],
  ];
  it.each(cases)("%j with secret %j → %j", async (before, secret, after) => {
    const request = outgoing({ url: `https://api.example.test/v1/list?${before}`, headers: { accept: "a" } });
    await credential(secret).prepare(request, anyGrant);
    expect(request.headers).toEqual({ accept: "a" });
    expect(request.url.pathname).toBe("/v1/list");
    expect(request.url.search).toBe(after);
    // and the forwarded query carries exactly one value for the parameter: ours
    expect(request.url.searchParams.getAll("api_key")).toEqual([secret]);
  });

  it("drops what a server reads as a parameter named with a dot: PHP reads api.key and api_key both as api_key", async () => {
    const request = outgoing({ url: "https://api.example.test/v1/list?api_key=a&api.key=b&x=1" });
    await queryKind.compile({ type: "query", param: "api.key" }, "sk-1", context()).prepare(request, anyGrant);
    expect(request.url.search).toBe("?x=1&api.key=sk-1");
  });

  it("does not touch headers and owns none", async () => {
    const request = outgoing({ headers: { api_key: "agent", authorization: "x" } });
    const query = credential("sk-1");
    await query.prepare(request, anyGrant);
    expect(request.headers).toEqual({ api_key: "agent", authorization: "x" });
    expect(query.ownsHeader("api_key")).toBe(false);
  });
});
