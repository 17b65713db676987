import { readFileSync } from "node:fs";

/** Whether a process with this pid runs on this host (a zombie, which answers signals until reaped, does not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return true;
  }
}

/**
 * What tells this process apart from a later one given the same pid, on Linux: the boot it runs in and the
 * moment in it that it started (clock ticks since boot, which no clock change moves). Undefined where /proc
 * does not tell (another OS, or a process gone).
 */
export function processStartIdentity(pid: number): string | undefined {
  try {
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces and parentheses): state is field 3, starttime field 22.
    const startTicks = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return startTicks ? `${bootId}/${startTicks}` : undefined;
  } catch {
    return undefined;
  }
}
