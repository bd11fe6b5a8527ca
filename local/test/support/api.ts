/** The stack's API client (local/src/client.ts) and the tests' polling helper. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { UploadTicket as PresignTicket } from '@avatar-pipeline/presign';
import type { UploadTicket } from '../../src/client.js';

export { ApiClient, postUpload, type UploadStatus, type UploadTicket } from '../../src/client.js';

// The client's ticket type mirrors presign's (the stack does not depend on the service's package):
// both directions must stay assignable.
export const ticketTypesAgree: [PresignTicket, UploadTicket] extends [UploadTicket, PresignTicket] ? true : never = true;

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
