import type { PrismaClient } from "@prisma/client";

/**
 * The issuer a broker was started with: `KEYWARD_ISSUER` when set (`configured`), else its own
 * http://HOST:PORT, which only counts when no broker has recorded the deployment's issuer yet.
 */
export type IssuerSetting = { url: string; configured: boolean };

/** The deployment's issuer as recorded in the database, and what set it there. */
export type RecordedIssuer = { issuer: string; source: IssuerSource };

/** "KEYWARD_ISSUER": set explicitly; "default": the first broker's own http://HOST:PORT. */
export type IssuerSource = "KEYWARD_ISSUER" | "default";

export class IssuerMismatchError extends Error {}

export const sourceOf = (setting: IssuerSetting): IssuerSource => (setting.configured ? "KEYWARD_ISSUER" : "default");

/**
 * The issuer this broker must use, given the deployment's: always the recorded one, so that every replica
 * signs and accepts the same `iss`. A broker explicitly configured with another one is refused rather than
 * left to issue tokens the other replicas reject (or to accept tokens they would not).
 */
export function reconcileIssuer(recorded: RecordedIssuer, setting: IssuerSetting): string {
  if (setting.configured && setting.url !== recorded.issuer) {
    const origin =
      recorded.source === "KEYWARD_ISSUER" ? "set by KEYWARD_ISSUER" : "the first broker's own address, as KEYWARD_ISSUER was unset";
    throw new IssuerMismatchError(
      `KEYWARD_ISSUER is ${setting.url}, but this deployment's issuer is ${recorded.issuer} (${origin}, recorded in the database ` +
        `by the first broker to start). Every replica must use the same issuer, or the tokens of one are refused by the others: ` +
        `set KEYWARD_ISSUER=${recorded.issuer}, or leave it unset to use the deployment's. To change the deployment's issuer, ` +
        `see docs/replicas.md.`,
    );
  }
  return recorded.issuer;
}

/**
 * Records this broker's issuer as the deployment's if none is yet (the first broker on a database, or the
 * first after an upgrade), then returns the one every replica uses. Two brokers starting together both try
 * to insert; ON CONFLICT DO NOTHING lets exactly one win, and both read the winner's.
 */
export async function resolveDeploymentIssuer(prisma: Pick<PrismaClient, "deploymentIssuer">, setting: IssuerSetting): Promise<string> {
  await prisma.deploymentIssuer.createMany({ data: [{ id: 1, issuer: setting.url, source: sourceOf(setting) }], skipDuplicates: true });
  const recorded = await prisma.deploymentIssuer.findUniqueOrThrow({ where: { id: 1 } });
  return reconcileIssuer({ issuer: recorded.issuer, source: recorded.source as IssuerSource }, setting);
}
