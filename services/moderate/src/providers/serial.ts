import { setImmediate as eventLoopTurn } from 'node:timers/promises';

/**
 * Runs async jobs one at a time, in arrival order (the tfjs WASM backend is single-threaded state).
 *
 * Each job starts after a turn of the event loop. A model run holds the thread for 50-100 ms and
 * resolves without one (the WASM backend's reads are plain promises), so queued runs (the uploads
 * waiting for the model) would otherwise follow one another with no I/O in between: the uploads
 * that arrived meanwhile could not get on with their downloads and table writes until the whole
 * chain was done, and would then queue for the model later still. With the turn they wait at most
 * one run.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Jobs queued or running. */
  get depth(): number {
    return this.waiting;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    this.waiting += 1;
    const result = this.tail
      .then(() => eventLoopTurn())
      .then(job)
      .finally(() => {
        this.waiting -= 1;
      });
    // A failed job must not stall the ones behind it.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
