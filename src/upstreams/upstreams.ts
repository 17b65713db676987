import { randomUUID } from "node:crypto";
import type { PrismaClient, Upstream } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { conflict, notFound } from "../http/errors.js";
import { slug } from "../http/schemas.js";
import type { Vault } from "../vault/vault.js";
import { authConfigSchema, compileInjector, headersOwnedBy, secretSchema, type AuthConfig, type Injector } from "./credentials/index.js";

const baseUrl = z
  .string()
  .max(2000)
  .transform((text, ctx) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "not a URL" });
      return z.NEVER;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") ctx.addIssue({ code: "custom", message: "must be http or https" });
    if (url.username || url.password) ctx.addIssue({ code: "custom", message: "credentials belong in secret, not the URL" });
    if (url.search || url.hash) ctx.addIssue({ code: "custom", message: "no query string or fragment" });
    return url.origin + url.pathname.replace(/\/+$/, "");
  });

export const createUpstreamBody = z.strictObject({
  name: slug,
  baseUrl,
  environment: slug,
  auth: authConfigSchema,
  secret: secretSchema,
});
export const updateUpstreamBody = z
  .strictObject({ baseUrl: baseUrl.optional(), environment: slug.optional(), auth: authConfigSchema.optional() })
  .refine((b) => Object.keys(b).length > 0, "nothing to update");
export const setSecretBody = z.strictObject({ secret: secretSchema });

/** What the API shows of an upstream: never the secret, only that it is set and when it last changed. */
export function upstreamView(u: Upstream) {
  return {
    id: u.id,
    name: u.name,
    baseUrl: u.baseUrl,
    environment: u.environment,
    auth: u.authConfig as AuthConfig,
    secret: { set: true, updatedAt: u.secretUpdatedAt },
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
  };
}

const secretContext = (upstreamId: string) => `upstream-secret:${upstreamId}`;

type Actor = { actor: string; requestId: string };

export class Upstreams {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly vault: Vault,
  ) {}

  async create(input: z.infer<typeof createUpstreamBody>, meta: Actor) {
    const id = randomUUID();
    return this.prisma.$transaction(async (tx) => {
      if (await tx.upstream.findUnique({ where: { name: input.name } })) throw conflict(`upstream ${input.name} exists`);
      const row = await tx.upstream.create({
        data: {
          id,
          name: input.name,
          baseUrl: input.baseUrl,
          environment: input.environment,
          authConfig: input.auth,
          secretCiphertext: this.vault.encrypt(input.secret, secretContext(id)),
          secretKeyId: this.vault.keyId,
          secretUpdatedAt: new Date(),
        },
      });
      await this.#audit(tx, meta, "upstream.create", row);
      return upstreamView(row);
    });
  }

  async list() {
    return (await this.prisma.upstream.findMany({ orderBy: { name: "asc" } })).map(upstreamView);
  }

  async get(name: string) {
    return upstreamView(await this.#find(this.prisma, name));
  }

  async update(name: string, input: z.infer<typeof updateUpstreamBody>, meta: Actor) {
    return this.prisma.$transaction(async (tx) => {
      await this.#find(tx, name);
      const row = await tx.upstream.update({
        where: { name },
        data: { baseUrl: input.baseUrl, environment: input.environment, authConfig: input.auth },
      });
      await this.#audit(tx, meta, "upstream.update", row);
      return upstreamView(row);
    });
  }

  async setSecret(name: string, secret: string, meta: Actor) {
    return this.prisma.$transaction(async (tx) => {
      const existing = await this.#find(tx, name);
      const row = await tx.upstream.update({
        where: { name },
        data: {
          secretCiphertext: this.vault.encrypt(secret, secretContext(existing.id)),
          secretKeyId: this.vault.keyId,
          secretUpdatedAt: new Date(),
        },
      });
      await this.#audit(tx, meta, "upstream.set_secret", row);
      return upstreamView(row);
    });
  }

  async remove(name: string, meta: Actor) {
    await this.prisma.$transaction(async (tx) => {
      const row = await this.#find(tx, name);
      const grants = await tx.grant.count({ where: { upstreamId: row.id } });
      if (grants > 0) throw conflict(`upstream ${name} is used by ${grants} grant(s); delete them first`);
      await tx.upstream.delete({ where: { id: row.id } });
      await this.#audit(tx, meta, "upstream.delete", row);
    });
  }

  /** What the proxy needs to forward to this upstream: where, and how to present its credential. */
  compileForProxy(row: Upstream): CompiledUpstream {
    const auth = authConfigSchema.parse(row.authConfig);
    return {
      name: row.name,
      environment: row.environment,
      baseUrl: new URL(row.baseUrl),
      inject: compileInjector(auth, this.vault.decrypt(row.secretCiphertext, secretContext(row.id))),
      ownedHeaders: headersOwnedBy(auth),
    };
  }

  async #find(db: Pick<PrismaClient, "upstream">, name: string) {
    const row = await db.upstream.findUnique({ where: { name } });
    if (!row) throw notFound(`upstream ${name}`);
    return row;
  }

  async #audit(tx: Parameters<typeof appendAudit>[0], meta: Actor, action: string, row: Upstream) {
    await appendAudit(tx, {
      kind: "admin.change",
      actor: meta.actor,
      requestId: meta.requestId,
      upstream: row.name,
      details: { action, upstreamId: row.id, baseUrl: row.baseUrl, environment: row.environment, auth: row.authConfig as object },
    });
  }
}

export type CompiledUpstream = {
  name: string;
  environment: string;
  baseUrl: URL;
  inject: Injector;
  ownedHeaders: string[];
};

