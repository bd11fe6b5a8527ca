/** Small scheduling aids for the broker: a bound on concurrent attempts and cancellable backoff waits. */

/** Runs at most `max` tasks at once; the rest wait in arrival order. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`concurrency must be a positive integer, got ${max}`);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active += 1;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, or give it back.
      const next = this.queue.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

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
