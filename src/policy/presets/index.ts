import { awsEc2, awsIam, awsRds, awsSts } from "./aws.js";
import { awsS3 } from "./aws-s3.js";
import { flyGraphql, flyMachines } from "./fly.js";
import { github } from "./github.js";
import { railway } from "./railway.js";
import { render } from "./render.js";
import type { Preset, PresetRedaction, ProtectedOperation } from "./types.js";

export type { Preset, PresetRedaction, ProtectedOperation } from "./types.js";

/**
 * Protection presets shipped with Keyward: operations that destroy data or its backups on common hosting
 * and cloud APIs, and operations that mint a credential the agent could use outside Keyward. An upstream lists the presets that apply to it; a call matching one of their
 * operations is denied unless the grant names the operation in `allowProtected` and the token was
 * approved by a human.
 */
export const PRESETS: readonly Preset[] = [railway, render, flyMachines, flyGraphql, awsRds, awsEc2, awsS3, awsSts, awsIam, github];

export const PRESET_IDS = PRESETS.map((p) => p.id) as [string, ...string[]];
export const PROTECTED_OPERATION_IDS = PRESETS.flatMap((p) => p.operations.map((o) => o.id)) as [string, ...string[]];

/** Preset redactions a grant can opt out of (`redactOptOut`). */
export const PRESET_REDACTION_IDS = PRESETS.flatMap((p) => (p.redactions ?? []).map((r) => r.id)) as [string, ...string[]];
const byId = new Map(PRESETS.map((p) => [p.id, p]));

export function presetById(id: string): Preset | undefined {
  return byId.get(id);
}

/** The protected operations of the named presets; unknown names contribute none (they are refused on write). */
export function protectedOperationsOf(presetIds: readonly string[]): ProtectedOperation[] {
  return presetIds.flatMap((id) => byId.get(id)?.operations ?? []);
}

/** The presets applied by default to an upstream on this host and protocol. */
export function presetsForHost(hostname: string): Preset[] {
  const host = hostname.toLowerCase();
  return PRESETS.filter((p) => p.hosts.some((h) => (typeof h === "string" ? h === host : h.test(host))));
}

/** The default response redactions of the named presets. */
export function presetRedactionsOf(presetIds: readonly string[]): PresetRedaction[] {
  return presetIds.flatMap((id) => byId.get(id)?.redactions ?? []);
}
