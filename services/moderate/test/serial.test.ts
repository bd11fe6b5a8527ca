import { describe, expect, it } from 'vitest';
import { serialRunner } from '../src/providers/serial.js';

/** Holds the thread for `ms`, as a model run does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('the model runner', () => {
  it('runs jobs one at a time, in arrival order, past a failed one', async () => {
    const serially = serialRunner();
    const log: string[] = [];
    let running = 0;
    const job = (name: string, fail = false) => async () => {
      running += 1;
      expect(running).toBe(1);
      log.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.push(`end ${name}`);
      running -= 1;
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([serially(job('a')), serially(job('b', true)), serially(job('c'))]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'failed'))).toEqual(['a', 'failed', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('lets I/O in between queued runs that never yield themselves', async () => {
    const serially = serialRunner();
    const log: string[] = [];
    // Runs that block the thread and resolve without a macrotask, as the WASM model does.
    const run = (name: string) => async () => {
      busy(5);
      log.push(name);
    };
    const first = serially(async () => {
      await run('view 1')();
      // Another request's I/O completes while the model is busy.
      setImmediate(() => log.push('io'));
    });
    const second = serially(run('view 2'));
    await Promise.all([first, second]);
    expect(log).toEqual(['view 1', 'io', 'view 2']);
  });
});
