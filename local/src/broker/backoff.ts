/** Backoff timers that `cancelAll` cuts short (on close), so shutdown never waits out a backoff. */
export class Backoff {
  private readonly waiting = new Set<() => void>();
  private cancelled = false;

  /** Resolves true after `ms`, or false at once if cancelled. */
  wait(ms: number): Promise<boolean> {
    if (this.cancelled) return Promise.resolve(false);
    return new Promise((resolve) => {
      const stop = () => {
        clearTimeout(timer);
        this.waiting.delete(stop);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.waiting.delete(stop);
        resolve(true);
      }, ms);
      this.waiting.add(stop);
    });
  }

  cancelAll(): void {
    this.cancelled = true;
    for (const stop of [...this.waiting]) stop();
  }
}
