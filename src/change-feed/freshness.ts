/**
 * How current a replica's state fed by the change channel (src/change-feed/feed.ts) provably is. The
 * state is current as of time T when every change committed before T is in it. Two things prove that:
 *
 * - a full load that started at T;
 * - while listening, the echo of a ping this replica NOTIFYed at T: PostgreSQL delivers notifications in
 *   commit order, so every change committed before the ping has been delivered (and applied) before the
 *   echo. This counts only once a full load that started after the current LISTEN has finished, since
 *   changes committed before the LISTEN were never notified to this connection.
 *
 * A lost connection simply stops the echoes; the state is then only as current as the last proof, and
 * its followers fail closed once that is older than the allowed staleness.
 */
export class Freshness {
  #currentAsOf = -Infinity;
  #epoch = 0;
  #listening = false;
  #loadedSinceListen = false;

  /** A LISTEN was (re)established; returns its epoch, to be passed to loads started from now on. */
  listening(): number {
    this.#epoch++;
    this.#listening = true;
    this.#loadedSinceListen = false;
    return this.#epoch;
  }

  lost(): void {
    this.#epoch++;
    this.#listening = false;
    this.#loadedSinceListen = false;
  }

  /**
   * Something announced on this LISTEN was not applied: pings prove nothing more until a full load that
   * starts from now has finished.
   */
  mustReload(): void {
    this.#epoch++;
    this.#loadedSinceListen = false;
  }

  /** The epoch to record when a full load starts. */
  get epoch(): number {
    return this.#epoch;
  }

  /** A full load that started at `startedAt`, during `epoch`, has replaced the state. */
  loaded(startedAt: number, epoch: number): void {
    this.#currentAsOf = Math.max(this.#currentAsOf, startedAt);
    if (this.#listening && epoch === this.#epoch) this.#loadedSinceListen = true;
  }

  /** This replica's ping sent at `sentAt` came back over the notification connection. */
  pingEchoed(sentAt: number): void {
    if (this.#listening && this.#loadedSinceListen) this.#currentAsOf = Math.max(this.#currentAsOf, sentAt);
  }

  isCurrent(now: number, maxStalenessMs: number): boolean {
    return now - this.#currentAsOf <= maxStalenessMs;
  }

  get currentAsOf(): number {
    return this.#currentAsOf;
  }
}
