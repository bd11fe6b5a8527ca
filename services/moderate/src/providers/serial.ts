/** Runs async jobs one at a time, in arrival order (the tfjs WASM backend is single-threaded state). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Jobs queued or running. */
  get depth(): number {
    return this.waiting;
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    this.waiting += 1;
    const result = this.tail.then(job).finally(() => {
      this.waiting -= 1;
    });
    // A failed job must not stall the ones behind it.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
