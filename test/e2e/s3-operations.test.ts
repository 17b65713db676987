import {
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteBucketReplicationCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * The S3 incident: a grant that "never deletes" (deny DELETE) let `DeleteObjectsCommand` through, since
 * it is `POST /{bucket}?delete`. Real @aws-sdk/client-s3 commands go through the proxy to a local fake
 * S3; the aws-s3 preset names and protects the destructive ones by AWS's own operation names.
 */

type Fake = Awaited<ReturnType<typeof startUpstream>>;
const S3_KEYS = { accessKeyId: "AKIAKEYWARDTEST01", secretAccessKey: "s3-secret-access-key-for-tests" };

/** Just enough of S3 to answer the SDK: every call recorded, objects stored in memory. */
async function startFakeS3(): Promise<Fake> {
  const objects = new Map<string, string>();
  return startUpstream((req, res, body) => {
    const url = new URL(req.url ?? "/", "http://s3");
    const xml = (status: number, text: string) => {
      res.writeHead(status, { "content-type": "application/xml", "x-amz-request-id": "FAKE" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${text}`);
    };
    url.searchParams.delete("x-id"); // the SDK's routing hint
    if (req.method === "PUT" && url.searchParams.size === 0) {
      objects.set(url.pathname, body);
      res.writeHead(200, { etag: '"etag-1"' });
      return res.end();
    }
    if (req.method === "GET" && url.searchParams.get("list-type") === "2") {
      const keys = [...objects.keys()].map((k) => `<Contents><Key>${k.split("/").slice(2).join("/")}</Key><Size>1</Size></Contents>`);
      return xml(200, `<ListBucketResult><Name>photos</Name><KeyCount>${keys.length}</KeyCount>${keys.join("")}</ListBucketResult>`);
    }
    if (req.method === "GET" && objects.has(url.pathname)) {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end(objects.get(url.pathname));
    }
    if (req.method === "POST" && url.searchParams.has("delete")) return xml(200, "<DeleteResult></DeleteResult>");
    if (req.method === "DELETE") {
      res.writeHead(204);
      return res.end();
    }
    xml(404, "<Error><Code>NoSuchKey</Code><Message>not here</Message></Error>");
  });
}

let store: Store;
let broker: TestBroker;
let s3: Fake;
let agent: { id: string; clientId: string; clientSecret: string };

beforeAll(async () => {
  store = newStore();
  broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: "5000" });
  s3 = await startFakeS3();
  agent = await createAgent(broker, "s3-agent");
  for (const [name, presets] of [["s3-protected", ["aws-s3"]], ["s3-bare", []]] as const) {
    const res = await broker.admin("post", "/v1/upstreams", {
      name,
      baseUrl: s3.url,
      environment: "production",
      auth: { type: "aws-sigv4", region: "eu-west-1", service: "s3", payload: "signed" },
      secret: S3_KEYS,
      presets,
    });
    if (res.status !== 201) throw new Error(`${res.status} ${res.text}`);
  }
});

afterAll(async () => {
  await broker?.close();
  await s3?.close();
  await store?.drop();
});

/** An unmodified S3 client pointed at the proxy; only its Authorization is the agent's Keyward token. */
function clientFor(upstream: string, token: string): S3Client {
  const client = new S3Client({
    endpoint: `${broker.url}/proxy/${upstream}`,
    forcePathStyle: true,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIAAGENTHASNONE", secretAccessKey: "agent-has-no-real-key" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    maxAttempts: 1,
  });
  // After the SDK signed with its (useless) keys: the proxy authenticates the agent by its bearer token.
  client.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers.authorization = `Bearer ${token}`;
      return next(args);
    },
    { step: "deserialize", name: "keywardBearer" },
  );
  return client;
}

async function grantToken(name: string, upstream: string, extra: Record<string, unknown> = {}): Promise<string> {
  await createGrant(broker, { name, agents: [agent.id], upstream, methods: ["GET", "PUT", "POST", "DELETE"], paths: ["/photos/**", "/photos"], ...extra });
  return tokenFor(broker, agent, { grant: name });
}

async function newestEvent(query: string) {
  const res = await broker.admin("get", `/v1/audit?${query}&limit=1`);
  return res.body.events[0] as { decision: string; reason: string; status: number; details: { operations?: string[] } | null };
}

async function refusal(promise: Promise<unknown>): Promise<S3ServiceException> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3ServiceException);
  return err as S3ServiceException;
}

describe("S3 operations through the proxy", () => {
  it("ordinary commands work, and the audit names the operation", async () => {
    const client = clientFor("s3-protected", await grantToken("photos-rw", "s3-protected"));
    await client.send(new PutObjectCommand({ Bucket: "photos", Key: "2024/a.jpg", Body: "jpeg bytes" }));
    expect(s3.received.at(-1)).toMatchObject({ method: "PUT", url: expect.stringMatching(/^\/photos\/2024\/a.jpg(\?x-id=PutObject)?$/), body: "jpeg bytes" });
    expect((await newestEvent("kind=proxy&decision=allow")).details).toEqual({ operations: ["aws-s3.PutObject"], names: { agent: "s3-agent", grant: "photos-rw" } });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "photos" }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(["2024/a.jpg"]);
    expect((await newestEvent("kind=proxy&decision=allow")).details).toEqual({ operations: ["aws-s3.ListObjectsV2"], names: { agent: "s3-agent", grant: "photos-rw" } });
    const got = await client.send(new GetObjectCommand({ Bucket: "photos", Key: "2024/a.jpg" }));
    expect(await got.Body!.transformToString()).toBe("jpeg bytes");
  });

  const protectedCommands: [string, () => unknown][] = [
    ["aws-s3.DeleteObject", () => new DeleteObjectsCommand({ Bucket: "photos", Delete: { Objects: [{ Key: "2024/a.jpg" }, { Key: "b" }] } })],
    ["aws-s3.DeleteObject", () => new DeleteObjectCommand({ Bucket: "photos", Key: "2024/a.jpg" })],
    ["aws-s3.DeleteObject", () => new DeleteObjectCommand({ Bucket: "photos", Key: "2024/a.jpg", VersionId: "v1" })],
    ["aws-s3.DeleteBucket", () => new DeleteBucketCommand({ Bucket: "photos" })],
    [
      "aws-s3.PutBucketLifecycleConfiguration",
      () =>
        new PutBucketLifecycleConfigurationCommand({
          Bucket: "photos",
          LifecycleConfiguration: { Rules: [{ ID: "wipe", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 1 } }] },
        }),
    ],
    ["aws-s3.PutBucketVersioning", () => new PutBucketVersioningCommand({ Bucket: "photos", VersioningConfiguration: { Status: "Suspended" } })],
    ["aws-s3.PutBucketPolicy", () => new PutBucketPolicyCommand({ Bucket: "photos", Policy: "{}" })],
    ["aws-s3.DeleteBucketPolicy", () => new DeleteBucketPolicyCommand({ Bucket: "photos" })],
    ["aws-s3.DeleteBucketReplication", () => new DeleteBucketReplicationCommand({ Bucket: "photos" })],
    ["aws-s3.PutObjectRetention", () => new PutObjectRetentionCommand({ Bucket: "photos", Key: "k", Retention: { Mode: "GOVERNANCE", RetainUntilDate: new Date(0) } })],
    ["aws-s3.PutObjectLegalHold", () => new PutObjectLegalHoldCommand({ Bucket: "photos", Key: "k", LegalHold: { Status: "OFF" } })],
  ];

  it.each(protectedCommands)("%s is refused before it reaches S3", async (operation, command) => {
    const client = clientFor("s3-protected", await tokenFor(broker, agent, { grant: "photos-rw" }));
    const before = s3.received.length;
    const err = await refusal(client.send(command() as Parameters<S3Client["send"]>[0]));
    // A refusal in S3's own XML: the SDK surfaces AccessDenied, not a deserialization error.
    expect(err.name).toBe("AccessDenied");
    expect(err.message).toContain(operation);
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(err.$response?.headers["keyward-error"]).toBe("protected_operation");
    expect(s3.received.length).toBe(before);
    const event = await newestEvent("kind=proxy&decision=deny");
    expect(event.reason).toBe("protected_operation");
    expect((event.details as { reason: string }).reason).toContain(operation);
  });

  it("a query rule closes the incident's hole on an upstream without the preset", async () => {
    const byMethod = clientFor("s3-bare", await grantToken("never-deletes", "s3-bare", { deny: [{ method: "DELETE" }] }));
    // What happened: deny DELETE alone, and the bulk delete is a POST.
    await byMethod.send(new DeleteObjectsCommand({ Bucket: "photos", Delete: { Objects: [{ Key: "x" }] } }));
    expect(s3.received.at(-1)).toMatchObject({ method: "POST", url: expect.stringMatching(/^\/photos\/?\?delete/) });

    const withQuery = clientFor(
      "s3-bare",
      await grantToken("never-deletes-really", "s3-bare", { deny: [{ method: "DELETE" }, { method: "POST", query: { delete: "*" } }] }),
    );
    const before = s3.received.length;
    const err = await refusal(withQuery.send(new DeleteObjectsCommand({ Bucket: "photos", Delete: { Objects: [{ Key: "x" }] } })));
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(s3.received.length).toBe(before);
    const denied = await newestEvent("kind=proxy&decision=deny");
    expect(denied.reason).toBe("deny_rule");
    expect((denied.details as { reason: string }).reason).toBe("deny[1] matches (POST any path?delete=*)");
    await withQuery.send(new PutObjectCommand({ Bucket: "photos", Key: "still-works", Body: "x" }));
    expect(s3.received.length).toBe(before + 1);
  });
});
