import { z } from "zod";

/** Names that appear in URLs (`/proxy/<upstream>`) and logs: lowercase slugs only. */
export const slug = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "lowercase letters, digits and dashes, at most 63");

/**
 * Names people read (agents, grants, admin keys), printed as they are where the CLI asks to confirm: no
 * control characters, C1 included (U+009B is a one-byte CSI to a terminal).
 */
export const displayName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, "no control characters");

export const idParam = z.strictObject({ id: z.string().min(1).max(100) });
export const nameParam = z.strictObject({ name: slug });

export const errorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), reason: z.string().optional(), details: z.unknown().optional() }),
});
