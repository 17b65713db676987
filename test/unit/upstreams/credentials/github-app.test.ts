import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { installationTokenScope } from "../../../../src/upstreams/credentials/github-app.js";
import { compileCredential } from "../../../../src/upstreams/credentials/index.js";
import { anyGrant, context, outgoing } from "./request.js";
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

describe("github-app: the installation token's lifetime", () => {
  it("is kept no longer than GitHub's hour, whatever expires_at the endpoint claims", async () => {
    const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string;
    let exchanges = 0;
    const server = createServer((_req, res) => {
      exchanges++;
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ token: `ghs_${exchanges}`, expires_at: "2099-01-01T00:00:00Z" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      let clock = Date.parse("2026-01-02T03:04:05Z");
      const credential = compileCredential(
        { type: "github-app", appId: 1, installationId: 2 },
        pem,
        context({ baseUrl: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), now: () => clock }),
      );
      const sent = async () => {
        const request = outgoing();
        await credential.prepare(request, anyGrant);
        return request.headers.authorization;
      };
      expect(await sent()).toBe("Bearer ghs_1");
      clock += 58 * 60_000;
      expect(await sent()).toBe("Bearer ghs_1");
      // Refreshed a minute before the hour is out, as a token GitHub said lived an hour would be.
      clock += 2 * 60_000;
      expect(await sent()).toBe("Bearer ghs_2");
      expect(exchanges).toBe(2);
    } finally {
      server.close();
    }
  });
});
