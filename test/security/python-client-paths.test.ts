import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { title } from "./cases.js";

const PYTHON_CLIENT = fileURLToPath(new URL("../../clients/python", import.meta.url));

/**
 * The Python client's `call` on a stubbed transport: for each (upstream, path), "refused" when it raises
 * before sending anything, else the URL of the proxied call it sent.
 */
function calls(cases: [string, string][]): string[] {
  const script = `
import json, sys
from keyward import Keyward
sent = []
def send(method, url, headers, data):
    sent.append(url)
    if url.endswith("/oauth2/token"):
        return 200, {}, json.dumps({"access_token": "t", "expires_in": 300, "scope": "api:GET"}).encode()
    return 200, {}, b"ok"
for upstream, path in json.loads(sys.argv[1]):
    kw = Keyward("http://keyward.test", "kwc_a", "kws_b", "g")
    kw._send = send
    sent.clear()
    try:
        kw.call(upstream, "GET", path)
        print(sent[-1])
    except ValueError:
        print("refused" if not sent else "refused after sending")
`;
  return execFileSync("python3", ["-c", script, JSON.stringify(cases)], { cwd: PYTHON_CLIENT, encoding: "utf8" }).trim().split("\n");
}

describe(title("TOK-40"), () => {
  it("a path or upstream whose dot segments resolve out of the upstream's proxy is refused before anything is sent", () => {
    const escaping: [string, string][] = [
      ["api", "/../../v1/agents"],
      ["api", "/v1/../../oauth2/introspect"],
      ["api", "/%2e%2e/%2E%2E/v1/agents"],
      ["api", "/.%2e/other/v1"],
      ["api", "/v1/..\\..\\..\\v1/agents"],
      ["api", "/.."],
      ["..", "/v1/agents"],
      [".", "/v1/agents"],
    ];
    expect(calls(escaping)).toEqual(escaping.map(() => "refused"));
  });

  it("dot segments that stay within the upstream, and dots in the query, are sent as they are", () => {
    expect(calls([["api", "/v1/a/../b"], ["api", "/v1/./x"], ["api", "/v1?next=/../../admin"], ["api", "/v1/.well-known/x"]])).toEqual([
      "http://keyward.test/proxy/api/v1/a/../b",
      "http://keyward.test/proxy/api/v1/./x",
      "http://keyward.test/proxy/api/v1?next=/../../admin",
      "http://keyward.test/proxy/api/v1/.well-known/x",
    ]);
  });
});
