/** The stack's API client (local/src/client.ts) and the tests' polling helper. */
import { setTimeout as sleep } from 'node:timers/promises';
export { ApiClient, postUpload, type UploadStatus, type UploadTicket } from '../../src/client.js';

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
