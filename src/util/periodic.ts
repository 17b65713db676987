/**
 * Runs `task` every `intervalMs`, never two runs at once (a slow run delays the next instead of piling
 * up). The timer does not keep the process alive. `stop()` cancels the timer and waits for a run in
 * progress, so a caller can close the database right after.
 */
export function runPeriodically(
  task: () => Promise<void>,
  intervalMs: number,
  options: { immediately?: boolean } = {},
): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    // Tasks log their own failures; one that escapes must not become an unhandled rejection.
    running = task()
      .catch(() => {})
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  if (options.immediately) tick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
