import type { TestBroker } from "./broker.js";

export const basic = (clientId: string, clientSecret: string) =>
  "Basic " + Buffer.from(`${clientId}:${clientSecret}`).toString("base64");

export async function createUpstream(
  broker: TestBroker,
  body: { name: string; baseUrl: string; environment: string; secret: string; auth?: object; protocol?: string; presets?: string[] },
) {
  const res = await broker.admin("post", "/v1/upstreams", {
    auth: { type: "header", header: "Authorization", template: "Bearer {secret}" },
    ...body,
  });
  if (res.status !== 201) throw new Error(`create upstream: ${res.status} ${res.text}`);
  return res.body;
}

export async function createAgent(broker: TestBroker, name: string) {
  const res = await broker.admin("post", "/v1/agents", { name });
  if (res.status !== 201) throw new Error(`create agent: ${res.status} ${res.text}`);
  return res.body as { id: string; clientId: string; clientSecret: string };
}

export async function createGrant(broker: TestBroker, body: Record<string, unknown>) {
  const res = await broker.admin("post", "/v1/grants", body);
  if (res.status !== 201) throw new Error(`create grant: ${res.status} ${res.text}`);
  return res.body as { id: string; name: string };
}

export async function issueToken(
  broker: TestBroker,
  agent: { clientId: string; clientSecret: string },
  body: Record<string, unknown>,
) {
  return broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send(body);
}

export async function tokenFor(
  broker: TestBroker,
  agent: { clientId: string; clientSecret: string },
  body: Record<string, unknown>,
): Promise<string> {
  const res = await issueToken(broker, agent, body);
  if (res.status !== 200) throw new Error(`issue token: ${res.status} ${res.text}`);
  return res.body.access_token as string;
}
