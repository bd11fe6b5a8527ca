/**
 * One delivery attempt and the retry policy, with Knative's semantics
 * (knative.dev/eventing pkg/kncloudevents: SelectiveRetry, RetryConfigFromDeliverySpec, and the
 * broker filter's handling of subscriber responses).
 */
import type { BinaryMessage } from '@avatar-pipeline/kit/cloudevents';
import { describeError } from '@avatar-pipeline/kit/errors';
import { retryDelayMs, type RetryPolicy } from '@avatar-pipeline/kit/topology';
import { readReply, type DeliveryError, type Event } from './events.js';

export type AttemptResult =
  | { ok: true; status: number; reply: Event | undefined }
  | {
      ok: false;
      /** The status the broker saw; undefined when no response came. */
      status: number | undefined;
      retryable: boolean;
      problem: string;
      /** Details for the dead-letter extensions; Knative has none after a timeout or a bad reply. */
      error: DeliveryError | undefined;
    };

/** Retried: 5xx, 404 (a pod becoming ready), 408, 409, 429, and no response at all. Never 3xx or other 4xx. */
export function isRetryable(status: number): boolean {
  return status >= 500 || status === 404 || status === 408 || status === 409 || status === 429;
}

/**
 * Wait before retry `retry` (0 for the first retry): exponential is delay * 2^retry, linear is
 * delay * retry, so a linear policy retries the first time at once (the kit's `retryDelayMs`, which
 * the budgets in docs/events.md come from). Retry-After is ignored, as in Knative unless `retryAfterMax` is
 * set (alpha `delivery-retryafter`; our policies have no field for it).
 */
export function backoffMs(policy: RetryPolicy, retry: number): number {
  return retryDelayMs(policy, retry);
}

export interface AttemptOptions {
  fetch: typeof fetch;
  /** Per-attempt timeout (the policy's `timeout`); 0 means none. */
  timeoutMs: number;
  /** Subscribers may answer with a reply event; the dead-letter sink's answer is ignored. */
  expectReply: boolean;
}

export async function attempt(url: string, message: BinaryMessage, options: AttemptOptions): Promise<AttemptResult> {
  let res: Response;
  let body: Buffer;
  try {
    res = await options.fetch(url, {
      method: 'POST',
      headers: message.headers,
      body: message.body,
      ...(options.timeoutMs > 0 ? { signal: AbortSignal.timeout(options.timeoutMs) } : {}),
    });
    body = Buffer.from(await res.arrayBuffer());
  } catch (err) {
    if ((err as { name?: string } | null)?.name === 'TimeoutError') {
      return { ok: false, status: undefined, retryable: true, problem: `no response within ${options.timeoutMs} ms`, error: undefined };
    }
    // The text Knative's dispatcher records for a request that got no response.
    const problem = `dispatch error: Post "${url}": ${describeError(err)}`;
    return { ok: false, status: undefined, retryable: true, problem, error: { dest: url, code: 500, data: Buffer.from(problem) } };
  }
  if (res.status < 200 || res.status >= 300) {
    return {
      ok: false,
      status: res.status,
      retryable: isRetryable(res.status),
      problem: `answered ${res.status}`,
      error: { dest: url, code: res.status, data: body },
    };
  }
  if (!options.expectReply) return { ok: true, status: res.status, reply: undefined };
  const reply = readReply(res.headers, body.toString('utf8'));
  if (reply.kind === 'invalid') {
    // Knative's broker filter turns this into a 502 (retried) with no error details.
    return { ok: false, status: 502, retryable: true, problem: `answered ${res.status} with a ${reply.problem}`, error: undefined };
  }
  return { ok: true, status: res.status, reply: reply.kind === 'event' ? reply.event : undefined };
}
