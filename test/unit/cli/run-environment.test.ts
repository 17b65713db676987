import { describe, expect, it } from "vitest";
import { childEnvironment, WITHHELD_VARIABLES } from "../../../src/cli/run/environment.js";

describe("keyward run: the child's environment", () => {
  const parent = {
    PATH: "/usr/bin",
    HOME: "/home/agent",
    KEYWARD_CLIENT_ID: "kwc_1",
    KEYWARD_CLIENT_SECRET: "kws_secret",
    KEYWARD_CLIENT_SECRET_FILE: "/run/secret",
    KEYWARD_ADMIN_KEY: "kwa_admin",
    GITHUB_TOKEN: "ghp_real_token_the_parent_had",
    ALL_PROXY: "socks5://elsewhere",
    https_proxy: "http://elsewhere",
  };
  const env = childEnvironment({
    parent,
    proxyUrl: "http://keyward:pw@127.0.0.1:4000",
    noProxy: "",
    caFile: "/tmp/k/keyward-ca.pem",
    bundleFile: "/tmp/k/ca-bundle.pem",
    placeholders: { GITHUB_TOKEN: "keyward-placeholder-github-token" },
  });

  it("withholds the agent's and the operator's credentials", () => {
    for (const name of WITHHELD_VARIABLES) expect(env[name]).toBeUndefined();
    expect(Object.values(env)).not.toContain("kws_secret");
  });

  it("a placeholder replaces a real value the parent held", () => {
    expect(env.GITHUB_TOKEN).toBe("keyward-placeholder-github-token");
  });

  it("every proxy variable points at the relay; no other proxy is left", () => {
    for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]) expect(env[name]).toBe("http://keyward:pw@127.0.0.1:4000");
    expect(env.ALL_PROXY).toBeUndefined();
    expect(env.NO_PROXY).toBe("");
    expect(env.no_proxy).toBe("");
  });

  it("trust: Node adds Keyward's CA; the variables that replace a trust store get the bundle", () => {
    expect(env.NODE_EXTRA_CA_CERTS).toBe("/tmp/k/keyward-ca.pem");
    for (const name of ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE"]) expect(env[name]).toBe("/tmp/k/ca-bundle.pem");
  });

  it("the rest of the parent's environment is kept, and the parent's object is not changed", () => {
    expect(env.PATH).toBe("/usr/bin");
    expect(parent.KEYWARD_CLIENT_SECRET).toBe("kws_secret");
  });
});
