/** glibc's malloc settings a broker runs with; see malloc-tunables.js. */
export const BROKER_GLIBC_TUNABLES: string;
/** `{ GLIBC_TUNABLES: <settings> }` for a broker's environment, or `{}` when `env` (default: this process's) already sets it. */
export function mallocTunablesEnvironment(env?: NodeJS.ProcessEnv): { GLIBC_TUNABLES?: string };
/** Whether this process runs on glibc. */
export function runsOnGlibc(): boolean;
