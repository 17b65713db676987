import { statSync } from "node:fs";

/** A file or folder of the data dir that another local user could have planted or changed. */
export class UnsafePathError extends Error {}

/**
 * Refuses `path` unless it is this process's user's and no one else may write to it: Keyward trusts what
 * it reads there (the master key, the audit spool it adopts after a crash), and another local user who
 * could write to the data dir (a shared volume, a path under /tmp, a loose umask) would otherwise have the
 * broker use their master key or ship their forged events into the audit chain. As sshd does with keys.
 */
export function assertPrivate(path: string, what: string): void {
  const uid = process.getuid?.();
  if (uid === undefined) return; // no POSIX owners (Windows)
  const { uid: owner, mode } = statSync(path);
  if (owner !== uid) {
    throw new UnsafePathError(`${what} ${path} is owned by uid ${owner}, not by the broker's user (uid ${uid}): another user may have planted it; remove it, or chown it if it is yours`);
  }
  if (mode & 0o022) {
    throw new UnsafePathError(`${what} ${path} is writable by other users (mode ${(mode & 0o777).toString(8)}): chmod go-w ${path}`);
  }
}
