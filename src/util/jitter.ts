/**
 * A wait of between half of `ms` and `ms`, at random: retries of replicas (or connections) that failed
 * together then do not come back in step.
 */
export const jittered = (ms: number): number => ms * (0.5 + Math.random() / 2);
