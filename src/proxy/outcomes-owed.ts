/**
 * Forwarded calls whose outcome event (`proxy.response`) is not kept yet. A call cut by a stop (its agent's
 * connection closed, FLT-53) records its outcome a few ticks after its socket closed, which is after the
 * HTTP server reports itself closed: the stop waits for these before it closes the audit log, or their
 * events would come to a closed spool and be lost. A count, not a set: two integer steps per call.
 */
export class OutcomesOwed {
  #count = 0;
  #onNone: (() => void) | null = null;

  /** A call was forwarded (its allow event is durable): its outcome is owed. */
  owe(): void {
    this.#count++;
  }

  /** Its outcome was kept (or the attempt settled). */
  settle(): void {
    if (--this.#count === 0) this.#onNone?.();
  }

  /** Settles once no outcome is owed, or after `timeoutMs` (a bug must not hold a stop forever): true if none is. */
  async allKept(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const kept = await new Promise<boolean>((resolve) => {
      this.#onNone = () => resolve(true);
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    clearTimeout(timer);
    this.#onNone = null;
    return kept;
  }
}
