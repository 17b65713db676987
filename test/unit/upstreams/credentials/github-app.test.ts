import { describe, expect, it } from "vitest";
import { installationTokenScope } from "../../../../src/upstreams/credentials/github-app.js";
import type { HttpMethod } from "../../../../src/policy/decide.js";

const grant = (paths: string[], methods: HttpMethod[] = ["GET", "POST"]) => ({ methods, paths });

describe("installationTokenScope: repositories", () => {
  it.each<[string[], string[] | undefined]>([
    [["/repos/acme/widgets/**"], ["widgets"]],
    [["/repos/acme/widgets"], ["widgets"]],
    [["/repos/acme/widgets/issues", "/repos/acme/widgets/pulls/*"], ["widgets"]],
    [["/repos/acme/widgets/**", "/repos/acme/gadgets/**"], ["gadgets", "widgets"]],
    [["/repos/acme/widgets/**", "/repos/other/tools/**"], ["tools", "widgets"]],
    // any path that is not under a literal repository leaves the token for every repository
    [["/repos/acme/*/issues"], undefined],
    [["/repos/acme/{repo}/issues"], undefined],
    [["/repos/*/widgets/**"], undefined],
    [["/repos/acme/**"], undefined],
    [["/repos/**"], undefined],
    [["/repos"], undefined],
    [["/repos/acme"], undefined],
    [["/**"], undefined],
    [["/graphql"], undefined],
    [["/repos/acme/widgets/**", "/user"], undefined],
    [["/orgs/acme/repos"], undefined],
  ])("%j → %j", (paths, repositories) => {
    expect(installationTokenScope(grant(paths), undefined).repositories).toEqual(repositories);
  });
});

describe("installationTokenScope: permissions", () => {
  const configured = { contents: "write", issues: "admin", metadata: "read" } as const;

  it("none configured: none asked for (the installation's own)", () => {
    expect(installationTokenScope(grant(["/**"], ["GET"]), undefined)).toEqual({});
  });

  it("a grant that may write keeps the configured permissions", () => {
    expect(installationTokenScope(grant(["/**"], ["GET", "POST"]), configured).permissions).toEqual(configured);
    expect(installationTokenScope(grant(["/**"], ["DELETE"]), configured).permissions).toEqual(configured);
  });

  it.each<[HttpMethod[]]>([[["GET"]], [["GET", "HEAD"]], [["GET", "HEAD", "OPTIONS"]]])("a %j grant caps each at read", (methods) => {
    expect(installationTokenScope(grant(["/**"], methods), configured).permissions).toEqual({ contents: "read", issues: "read", metadata: "read" });
  });

  it("both narrowings together", () => {
    expect(installationTokenScope(grant(["/repos/acme/widgets/**"], ["GET"]), { issues: "write" })).toEqual({
      repositories: ["widgets"],
      permissions: { issues: "read" },
    });
  });
});
