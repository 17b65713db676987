/**
 * Polls `check` every `everyMs` until it returns something truthy, and returns that. Past `withinMs` it
 * throws, naming what it waited for (`what` may be a function, to describe the state at that moment:
 * a process's output, what was seen so far). A check that throws ends the wait with its error.
 */
export async function waitFor<T>(check: () => T | Promise<T>, withinMs: number, what: string | (() => string), everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${typeof what === "function" ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
