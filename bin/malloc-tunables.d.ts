/** glibc's malloc settings a broker runs with; see malloc-tunables.js. */
export const BROKER_GLIBC_TUNABLES: string;
/** `GLIBC_TUNABLES=<settings>` for `env`, or "" when `env` (default: this process's) already sets GLIBC_TUNABLES. */
export function mallocTunablesAssignment(env?: NodeJS.ProcessEnv): string;
/** Whether this process runs on glibc. */
export function runsOnGlibc(): boolean;
