import { describe, expect, it } from 'vitest';
import { defaultPictureRetry, syncPicture, type PictureSync } from '../src/cognito.js';

/** A PictureSync answering from a script, recording each call's time and whether it came with an abort signal. */
function scripted(answers: (() => Promise<'updated' | 'user_not_found'>)[]) {
  const calls: { at: number; signal: AbortSignal | undefined }[] = [];
  const sync: PictureSync = {
    setPicture: (_playerId, _url, signal) => {
      calls.push({ at: Date.now(), signal });
      const answer = answers[Math.min(calls.length - 1, answers.length - 1)]!;
      return answer();
    },
    clearPicture: async () => 'cleared',
  };
  return { sync, calls };
}

const failing = () => Promise.reject(Object.assign(new Error('throttled'), { name: 'TooManyRequestsException' }));

describe('syncPicture', () => {
  it('keeps the default within the publishing delivery timeout (45 s), with room for the table writes', () => {
    expect(defaultPictureRetry.budgetMs).toBeLessThanOrEqual(15_000);
    expect(defaultPictureRetry.attempts).toBeGreaterThan(1);
  });

  it('retries until a call succeeds', async () => {
    const { sync, calls } = scripted([failing, failing, async () => 'updated']);
    const result = await syncPicture(sync, 'p', 'u', { attempts: 3, baseDelayMs: 5, maxDelayMs: 10, budgetMs: 1_000 });
    expect(result).toEqual({ outcome: 'ok', attempts: 3 });
    expect(calls.every((c) => c.signal instanceof AbortSignal)).toBe(true);
  });

  it('does not retry a missing user', async () => {
    const { sync, calls } = scripted([async () => 'user_not_found']);
    expect(await syncPicture(sync, 'p', 'u')).toEqual({ outcome: 'user_not_found', attempts: 1 });
    expect(calls).toHaveLength(1);
  });

  it('gives up after its attempts with the last error, never rejecting', async () => {
    const { sync, calls } = scripted([failing]);
    const result = await syncPicture(sync, 'p', 'u', { attempts: 4, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 1_000 });
    expect(result).toMatchObject({ outcome: 'failed', attempts: 4, error: { name: 'TooManyRequestsException' } });
    expect(calls).toHaveLength(4);
  });

  it('waits with full jitter, capped: random · min(max, base · 2ⁿ)', async () => {
    const { sync, calls } = scripted([failing]);
    // random() = 1 gives the cap of each wait: 40, 80, 100 (capped), 100.
    await syncPicture(sync, 'p', 'u', { attempts: 5, baseDelayMs: 40, maxDelayMs: 100, budgetMs: 5_000 }, () => 0.999);
    const waits = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    for (const [i, expected] of [39, 79, 99, 99].entries()) {
      expect(waits[i]).toBeGreaterThanOrEqual(expected - 2);
      expect(waits[i]).toBeLessThan(expected + 60);
    }
  });

  it('stops within its budget, aborting a call that hangs', async () => {
    // Answers only when aborted, as the SDK's send does with an abortSignal.
    const { sync, calls } = scripted([
      () => {
        const signal = calls[calls.length - 1]!.signal!;
        return new Promise<'updated'>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
      },
    ]);
    const started = Date.now();
    const result = await syncPicture(sync, 'p', 'u', { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, budgetMs: 150 });
    expect(result.outcome).toBe('failed');
    expect(result.attempts).toBe(1);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
