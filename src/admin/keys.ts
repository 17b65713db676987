import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { PrismaClient } from "@prisma/client";

export const ROLES = ["admin", "security", "auditor"] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do; `admin` may do everything. */
export type Permission = "manage" | "revoke" | "read_audit" | "introspect" | "approve";
const PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ["manage", "revoke", "read_audit", "introspect", "approve"],
  security: ["revoke", "read_audit", "introspect", "approve"],
  auditor: ["read_audit"],
};

export const roleMay = (role: Role, permission: Permission) => PERMISSIONS[role].includes(permission);
export const permissionsOf = (role: Role): readonly Permission[] => PERMISSIONS[role];

export type AdminPrincipal = { id: string; name: string; role: Role };

/** Admin keys carry 256 random bits, so an unsalted SHA-256 is enough to make the stored form useless. */
export const hashAdminKey = (key: string) => createHash("sha256").update(key, "utf8").digest("hex");

export const newAdminKey = () => "kwa_" + randomBytes(32).toString("base64url");

export async function createAdminKey(
  prisma: Pick<PrismaClient, "adminKey">,
  input: { name: string; role: Role; key?: string },
): Promise<{ id: string; key: string }> {
  const key = input.key ?? newAdminKey();
  const id = randomUUID();
  await prisma.adminKey.create({ data: { id, name: input.name, role: input.role, keyHash: hashAdminKey(key) } });
  return { id, key };
}

export async function findAdminByKey(prisma: PrismaClient, key: string): Promise<AdminPrincipal | null> {
  const row = await prisma.adminKey.findUnique({ where: { keyHash: hashAdminKey(key) } });
  if (!row || row.revokedAt) return null;
  return { id: row.id, name: row.name, role: row.role as Role };
}

/**
 * On an empty database, registers the configured key as the first admin key, or generates one.
 * Returns the generated key (to be shown once), or null when nothing was generated.
 */
export async function bootstrapAdminKey(prisma: PrismaClient, configured: string | undefined): Promise<string | null> {
  if ((await prisma.adminKey.count()) > 0) return null;
  try {
    const { key } = await createAdminKey(prisma, { name: "bootstrap", role: "admin", key: configured });
    return configured ? null : key;
  } catch (err) {
    // Replicas started together on an empty database all register KEYWARD_ADMIN_KEY: one insert wins,
    // the others find its hash taken, which is the same key.
    if (configured && (err as { code?: unknown }).code === "P2002") return null;
    throw err;
  }
}
