import { setImmediate as eventLoopTurn } from 'node:timers/promises';
import pLimit from 'p-limit';

/**
 * Runs async jobs one at a time, in arrival order (the tfjs WASM backend is single-threaded state).
 *
 * Each job starts after a turn of the event loop. A model run holds the thread for 50-100 ms and
 * resolves without one (the WASM backend's reads are plain promises), and p-limit starts the next
 * job on a microtask, so queued runs (the uploads waiting for the model) would otherwise follow one
 * another with no I/O in between: the uploads that arrived meanwhile could not get on with their
 * downloads and table writes until the whole chain was done, and would then queue for the model
 * later still. With the turn they wait at most one run.
 */
export function serialRunner(): <T>(job: () => Promise<T>) => Promise<T> {
  const limit = pLimit(1);
  return (job) =>
    limit(async () => {
      await eventLoopTurn();
      return job();
    });
}
