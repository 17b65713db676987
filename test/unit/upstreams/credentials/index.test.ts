import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  authConfigSchema,
  compileCredential,
  encodeSecret,
  secretInput,
  secretProblems,
  type AuthConfig,
} from "../../../../src/upstreams/credentials/index.js";
import { anyGrant, context, outgoing } from "./request.js";

const parse = (input: unknown) => authConfigSchema.safeParse(input);

const rsaPem = (bits: number, format: "pkcs1" | "pkcs8" = "pkcs1") =>
  generateKeyPairSync("rsa", { modulusLength: bits }).privateKey.export({ type: format, format: "pem" }) as string;
const PEM_2048 = rsaPem(2048);

describe("authConfigSchema: header kind", () => {
  const accepted: [string, unknown, AuthConfig][] = [
    ["defaults", { type: "header" }, { type: "header", header: "Authorization", template: "Bearer {secret}" }],
    ["custom header, bare secret", { type: "header", header: "X-Api-Key", template: "{secret}" }, { type: "header", header: "X-Api-Key", template: "{secret}" }],
    ["token scheme", { type: "header", template: "token {secret}" }, { type: "header", header: "Authorization", template: "token {secret}" }],
    ["secret in the middle", { type: "header", header: "x-key", template: "k={secret};v=1" }, { type: "header", header: "x-key", template: "k={secret};v=1" }],
    ["header with every token character", { type: "header", header: "A!#$%&'*+-.^_`|~9", template: "{secret}" }, { type: "header", header: "A!#$%&'*+-.^_`|~9", template: "{secret}" }],
    ["cookie may carry a credential", { type: "header", header: "Cookie", template: "session={secret}" }, { type: "header", header: "Cookie", template: "session={secret}" }],
  ];
  it.each(accepted)("accepts %s", (_name, input, expected) => {
    expect(parse(input)).toEqual({ success: true, data: expected });
  });

  const refused: [string, unknown][] = [
    ["template without {secret}", { type: "header", template: "Bearer" }],
    ["template with {secret} twice", { type: "header", template: "{secret}:{secret}" }],
    ["template with {secret} three times", { type: "header", template: "{secret}{secret}{secret}" }],
    ["template with a misspelt placeholder", { type: "header", template: "Bearer {Secret}" }],
    ["template with a CRLF", { type: "header", template: "Bearer {secret}\r\nX-Evil: 1" }],
    ["template with a LF", { type: "header", template: "Bearer {secret}\nX: 1" }],
    ["template with a NUL", { type: "header", template: "Bearer {secret}\u0000" }],
    ["template over 200 chars", { type: "header", template: "{secret}" + "x".repeat(193) }],
    ["empty header name", { type: "header", header: "" }],
    ["header name with a space", { type: "header", header: "X Api" }],
    ["header name with a colon", { type: "header", header: "X-Api:" }],
    ["header name with CRLF", { type: "header", header: "X-Api\r\nX-Evil" }],
    ["header name over 100 chars", { type: "header", header: "x".repeat(101) }],
    ["header name non-ASCII", { type: "header", header: "X-Ápi" }],
    ["Host", { type: "header", header: "Host" }],
    ["host", { type: "header", header: "host" }],
    ["HOST", { type: "header", header: "HOST" }],
    ["Content-Length", { type: "header", header: "Content-Length" }],
    ["Transfer-Encoding", { type: "header", header: "Transfer-Encoding" }],
    ["Connection", { type: "header", header: "Connection" }],
    ["Keep-Alive", { type: "header", header: "Keep-Alive" }],
    ["Upgrade", { type: "header", header: "Upgrade" }],
    ["TE", { type: "header", header: "TE" }],
    ["Trailer", { type: "header", header: "Trailer" }],
    ["Proxy-Authorization", { type: "header", header: "Proxy-Authorization" }],
    ["Proxy-Authenticate", { type: "header", header: "Proxy-Authenticate" }],
    ["Expect", { type: "header", header: "Expect" }],
    ["unknown field (strict)", { type: "header", header: "X-Key", extra: 1 }],
    ["a query field on the header kind", { type: "header", param: "key" }],
    ["template not a string", { type: "header", template: 5 }],
  ];
  it.each(refused)("refuses %s", (_name, input) => {
    expect(parse(input).success).toBe(false);
  });

  it("explains a reserved header", () => {
    const result = parse({ type: "header", header: "Host" });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toContain("a framing, hop-by-hop, forwarding or override header (any case, _ for -) cannot carry a credential");
  });

  it("explains a bad template", () => {
    const result = parse({ type: "header", template: "{secret}{secret}" });
    expect(result.error?.issues.map((i) => i.message)).toContain("must contain {secret} exactly once");
  });
});

describe("authConfigSchema: query kind", () => {
  const accepted = ["key", "api_key", "API-KEY", "access.token", "a", "x".repeat(100), "_", "0"];
  it.each(accepted)("accepts param %j", (param) => {
    expect(parse({ type: "query", param })).toEqual({ success: true, data: { type: "query", param } });
  });

  const refused: [string, unknown][] = [
    ["no param", { type: "query" }],
    ["empty param", { type: "query", param: "" }],
    ["param over 100 chars", { type: "query", param: "x".repeat(101) }],
    ["param with =", { type: "query", param: "a=b" }],
    ["param with &", { type: "query", param: "a&b" }],
    ["param with a space", { type: "query", param: "a b" }],
    ["param with %", { type: "query", param: "a%20" }],
    ["param with brackets", { type: "query", param: "key[]" }],
    ["param with #", { type: "query", param: "a#" }],
    ["param with ?", { type: "query", param: "?a" }],
    ["param with +", { type: "query", param: "a+b" }],
    ["param with newline", { type: "query", param: "a\nb" }],
    ["param non-ASCII", { type: "query", param: "clé" }],
    ["param not a string", { type: "query", param: 1 }],
    ["header fields on the query kind", { type: "query", param: "key", header: "X" }],
    ["template on the query kind", { type: "query", param: "key", template: "{secret}" }],
  ];
  it.each(refused)("refuses %s", (_name, input) => {
    expect(parse(input).success).toBe(false);
  });
});

describe("authConfigSchema: basic, aws-sigv4, oauth2-client-credentials, github-app", () => {
  const accepted: [string, unknown, AuthConfig][] = [
    ["basic", { type: "basic", username: "ada@example.com" }, { type: "basic", username: "ada@example.com" }],
    ["aws-sigv4, payload signed by default", { type: "aws-sigv4", region: "eu-west-1", service: "s3" }, { type: "aws-sigv4", region: "eu-west-1", service: "s3", payload: "signed" }],
    ["aws-sigv4, unsigned payload", { type: "aws-sigv4", region: "auto", service: "s3", payload: "unsigned" }, { type: "aws-sigv4", region: "auto", service: "s3", payload: "unsigned" }],
    ["aws-sigv4, execute-api", { type: "aws-sigv4", region: "us-east-1", service: "execute-api" }, { type: "aws-sigv4", region: "us-east-1", service: "execute-api", payload: "signed" }],
    [
      "oauth2, defaults",
      { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/oauth2/token", clientId: "app-1" },
      { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/oauth2/token", clientId: "app-1", clientAuth: "client_secret_basic" },
    ],
    [
      "oauth2, scopes and client_secret_post",
      { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/t", clientId: "c", scopes: ["https://graph.microsoft.com/.default", "read:all"], clientAuth: "client_secret_post" },
      { type: "oauth2-client-credentials", tokenUrl: "https://login.example.test/t", clientId: "c", scopes: ["https://graph.microsoft.com/.default", "read:all"], clientAuth: "client_secret_post" },
    ],
    ["github-app", { type: "github-app", appId: 12345, installationId: 678 }, { type: "github-app", appId: 12345, installationId: 678 }],
    [
      "github-app with permissions",
      { type: "github-app", appId: 1, installationId: 2, permissions: { contents: "read", issues: "write" } },
      { type: "github-app", appId: 1, installationId: 2, permissions: { contents: "read", issues: "write" } },
    ],
  ];
  it.each(accepted)("accepts %s", (_name, input, expected) => {
    expect(parse(input)).toEqual({ success: true, data: expected });
  });

  it("parsing the stored config again gives the same config", () => {
    for (const [, , parsed] of accepted) expect(parse(parsed)).toEqual({ success: true, data: parsed });
  });

  const refused: [string, unknown][] = [
    ["basic without username", { type: "basic" }],
    ["basic username with a colon", { type: "basic", username: "a:b" }],
    ["basic username with a newline", { type: "basic", username: "a\nb" }],
    ["basic with a password field", { type: "basic", username: "a", password: "p" }],
    ["aws-sigv4 without region", { type: "aws-sigv4", service: "s3" }],
    ["aws-sigv4 without service", { type: "aws-sigv4", region: "us-east-1" }],
    ["aws-sigv4 region with spaces", { type: "aws-sigv4", region: "us east", service: "s3" }],
    ["aws-sigv4 upper-case service", { type: "aws-sigv4", region: "us-east-1", service: "S3" }],
    ["aws-sigv4 unknown payload mode", { type: "aws-sigv4", region: "us-east-1", service: "s3", payload: "streaming" }],
    ["aws-sigv4 with keys in auth", { type: "aws-sigv4", region: "us-east-1", service: "s3", accessKeyId: "AKIA" }],
    ["oauth2 without tokenUrl", { type: "oauth2-client-credentials", clientId: "c" }],
    ["oauth2 without clientId", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t" }],
    ["oauth2 tokenUrl not a URL", { type: "oauth2-client-credentials", tokenUrl: "token", clientId: "c" }],
    ["oauth2 tokenUrl ftp", { type: "oauth2-client-credentials", tokenUrl: "ftp://a.test/t", clientId: "c" }],
    ["oauth2 tokenUrl with credentials", { type: "oauth2-client-credentials", tokenUrl: "https://c:s@a.test/t", clientId: "c" }],
    ["oauth2 tokenUrl with a query", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t?x=1", clientId: "c" }],
    ["oauth2 scope with a space", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", scopes: ["a b"] }],
    ["oauth2 scope with a quote", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", scopes: ['a"'] }],
    ["oauth2 scopes as a string", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", scopes: "a b" }],
    ["oauth2 unknown client auth", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", clientAuth: "private_key_jwt" }],
    ["oauth2 with clientSecret in auth", { type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", clientSecret: "s" }],
    ["github-app without installationId", { type: "github-app", appId: 1 }],
    ["github-app appId as a string", { type: "github-app", appId: "1", installationId: 2 }],
    ["github-app negative installationId", { type: "github-app", appId: 1, installationId: -2 }],
    ["github-app fractional appId", { type: "github-app", appId: 1.5, installationId: 2 }],
    ["github-app unknown permission level", { type: "github-app", appId: 1, installationId: 2, permissions: { contents: "none" } }],
    ["github-app odd permission name", { type: "github-app", appId: 1, installationId: 2, permissions: { "Contents!": "read" } }],
    ["github-app with privateKey in auth", { type: "github-app", appId: 1, installationId: 2, privateKey: "x" }],
    ["unknown kind", { type: "ssh" }],
    ["kind in upper case", { type: "HEADER" }],
    ["no kind", {}],
    ["null", null],
    ["a string", "header"],
  ];
  it.each(refused)("refuses %s", (_name, input) => {
    expect(parse(input).success).toBe(false);
  });
});

describe("secretInput", () => {
  it.each(["s", { accessKeyId: "a", secretAccessKey: "b" }])("accepts %j", (secret) => {
    expect(secretInput.safeParse(secret).success).toBe(true);
  });
  it.each([1, null, ["a"], { a: 1 }, { a: { b: "c" } }, "x".repeat(16_385)])("refuses %j", (secret) => {
    expect(secretInput.safeParse(secret).success).toBe(false);
  });
});

describe("secretProblems", () => {
  const fits: [AuthConfig["type"], unknown][] = [
    ["header", "sk-live-0123"],
    ["header", "x".repeat(16_384)],
    ["header", "ünïcødé"],
    ["query", "a b"],
    ["basic", "pass:word"],
    ["aws-sigv4", { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }],
    ["aws-sigv4", { accessKeyId: "ASIAEXAMPLE", secretAccessKey: "s", sessionToken: "FwoGZXIvYXdzE..." }],
    ["aws-sigv4", { accessKeyId: "0123456789abcdef0123456789abcdef", secretAccessKey: "r2-style" }],
    ["oauth2-client-credentials", "client-secret~1"],
    ["github-app", PEM_2048],
    ["github-app", rsaPem(2048, "pkcs8")],
  ];
  it.each(fits)("%s takes %j", (type, secret) => {
    expect(secretProblems(type, secret)).toEqual([]);
  });

  const misfits: [string, AuthConfig["type"], unknown, string, string][] = [
    ["header: empty", "header", "", "secret", "Too small"],
    ["header: over 16384 characters", "header", "x".repeat(16_385), "secret", "Too big"],
    ["header: CRLF", "header", "a\r\nX-Evil: 1", "secret", "no control characters or line breaks"],
    ["header: NUL", "header", "a\u0000", "secret", "no control characters or line breaks"],
    ["header: tab", "header", "a\tb", "secret", "no control characters or line breaks"],
    ["header: an object", "header", { value: "s" }, "secret", "the header kind takes a string secret"],
    ["query: an object", "query", { value: "s" }, "secret", "the query kind takes a string secret"],
    ["basic: username and password as an object", "basic", { username: "u", password: "p" }, "secret", "the basic kind takes a string secret: the password"],
    ["basic: a line break", "basic", "line\nbreak", "secret", "no control characters or line breaks"],
    ["aws-sigv4: a string", "aws-sigv4", "AKIA:secret", "secret", "the aws-sigv4 kind takes an object secret: { accessKeyId, secretAccessKey, sessionToken? }"],
    ["aws-sigv4: no secretAccessKey", "aws-sigv4", { accessKeyId: "AKIAIOSFODNN7EXAMPLE" }, "secret/secretAccessKey", "secretAccessKey must be a string"],
    ["aws-sigv4: no accessKeyId", "aws-sigv4", { secretAccessKey: "s" }, "secret/accessKeyId", "Invalid input"],
    ["aws-sigv4: accessKeyId with a slash", "aws-sigv4", { accessKeyId: "AKIA/EVIL", secretAccessKey: "s" }, "secret/accessKeyId", "an access key id: letters, digits, . _ -"],
    ["aws-sigv4: sessionToken with a line break", "aws-sigv4", { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s", sessionToken: "a\nb" }, "secret/sessionToken", "no control characters or line breaks"],
    ["aws-sigv4: an unknown part", "aws-sigv4", { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s", region: "us-east-1" }, "secret", "Unrecognized key"],
    ["oauth2-client-credentials: an object", "oauth2-client-credentials", { clientSecret: "s" }, "secret", "the oauth2-client-credentials kind takes a string secret: the client secret"],
    ["github-app: an object", "github-app", { pem: "x" }, "secret", "the github-app kind takes a string secret: the app's private key in PEM"],
    ["github-app: PEM armour around garbage", "github-app", "-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----\n", "secret", "not a PEM private key"],
    ["github-app: a token, not a key", "github-app", "ghp_notakey", "secret", "not a PEM private key"],
    ["github-app: an EC key", "github-app", generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }), "secret", "must be an RSA private key of at least 2048 bits"],
    ["github-app: RSA 1024", "github-app", rsaPem(1024), "secret", "must be an RSA private key of at least 2048 bits"],
    ["github-app: a public key", "github-app", generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }), "secret", "not a PEM private key"],
  ];
  it.each(misfits)("refuses %s", (_label, type, secret, path, message) => {
    const problems = secretProblems(type, secret);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => p.path.join("/"))).toContain(path);
    expect(problems.map((p) => p.message).join("; ")).toContain(message);
  });

  it("never echoes the secret", () => {
    const secret = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "do-not-echo\n" };
    expect(JSON.stringify(secretProblems("aws-sigv4", secret))).not.toContain("do-not-echo");
    expect(JSON.stringify(secretProblems("github-app", "do-not-echo-pem"))).not.toContain("do-not-echo");
    // Nor a key of it: secret text pasted as a key, or a part the kind does not take.
    const misplaced = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s", "do-not-echo-key": "x" };
    expect(JSON.stringify(secretProblems("aws-sigv4", misplaced))).not.toContain("do-not-echo");
  });
});

describe("stored secrets", () => {
  const sigv4Secret = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s" };

  it("stores a string as it is and an object as JSON", () => {
    expect(encodeSecret("sk-1")).toBe("sk-1");
    expect(JSON.parse(encodeSecret(sigv4Secret))).toEqual(sigv4Secret);
  });
});

describe("compileCredential", () => {
  const sigv4Secret = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s" };

  it("compiles each kind from its stored config and stored secret", async () => {
    const stored: [AuthConfig, string][] = [
      [{ type: "header", header: "X-Key", template: "{secret}" }, "sk-1"],
      [{ type: "query", param: "key" }, "sk-1"],
      [{ type: "basic", username: "u" }, "p"],
      [{ type: "aws-sigv4", region: "us-east-1", service: "s3", payload: "unsigned" }, encodeSecret(sigv4Secret)],
      [{ type: "oauth2-client-credentials", tokenUrl: "https://a.test/t", clientId: "c", clientAuth: "client_secret_basic" }, "cs"],
      [{ type: "github-app", appId: 1, installationId: 2 }, PEM_2048],
    ];
    for (const [auth, secret] of stored) {
      const credential = compileCredential(auth, secret, context());
      expect(typeof credential.prepare).toBe("function");
    }
    const request = outgoing();
    await compileCredential(stored[0]![0], "sk-1", context()).prepare(request, anyGrant);
    expect(request.headers).toEqual({ "x-key": "sk-1" });
  });

  it("fails closed when the stored secret no longer fits the config, without quoting it", () => {
    const sigv4: AuthConfig = { type: "aws-sigv4", region: "us-east-1", service: "s3", payload: "signed" };
    expect(() => compileCredential(sigv4, "do-not-log-me", context())).toThrow(/^the stored secret is not the JSON object its kind needs$/);
    const thrown = (() => {
      try {
        compileCredential(sigv4, JSON.stringify({ accessKeyId: "AKIAX", secretAccessKey: "do-not-log-me\n" }), context());
      } catch (err) {
        return String(err);
      }
    })();
    expect(thrown).toContain("no control characters");
    expect(thrown).not.toContain("do-not-log-me");
    expect(() => compileCredential({ type: "github-app", appId: 1, installationId: 2 }, "not a pem", context())).toThrow();
  });
});
