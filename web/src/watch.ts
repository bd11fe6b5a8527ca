/**
 * Follows one upload to its outcome. Pushes are the fast path; polling `GET /v1/uploads/{id}`
 * always runs beside them as the safety net (a push may be lost, late, or never subscribed), with
 * a backoff that is gentle while pushes are expected and brisk while they are not. An upload in
 * review waits for a person (minutes, hours): it is followed slowly, for as long as a review lasts.
 */
import { ApiError, terminalStatuses, type Upload } from './api.js';

export interface Backoff {
  firstMs: number;
  factor: number;
  maxMs: number;
}

/** Without push: the first answers come within a second or two, so look early and often. */
export const pollingBackoff: Backoff = { firstMs: 500, factor: 1.5, maxMs: 5_000 };
/** With push: polling only catches a push that never comes. */
export const pushBackoff: Backoff = { firstMs: 3_000, factor: 2, maxMs: 30_000 };
/** In review: a decision often comes within minutes, rarely within seconds. */
export const reviewBackoff: Backoff = { firstMs: 2_000, factor: 1.5, maxMs: 60_000 };
/** How long an upload may stay in review (the server's REVIEW_TIMEOUT_SECONDS default). */
export const REVIEW_WATCH_MS = 24 * 60 * 60_000;

export function backoffDelay(backoff: Backoff, attempt: number): number {
  return Math.min(backoff.maxMs, backoff.firstMs * backoff.factor ** attempt);
}

export interface WatchOptions {
  uploadId: string;
  fetchStatus: (uploadId: string) => Promise<Upload>;
  /** Every status seen, in order, without repeats. */
  onUpdate: (upload: Upload) => void;
  /** Asked before each wait: whether a push is expected for this upload. */
  pushActive: () => boolean;
  /** Stop polling after this long (default 5 minutes); the result is then undefined. */
  timeoutMs?: number;
  /** Once the upload is in review, follow it at least this long from then (default REVIEW_WATCH_MS). */
  reviewTimeoutMs?: number;
  /** For tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface Watch {
  /** The terminal status, or undefined when the watch timed out or was cancelled. */
  result: Promise<Upload | undefined>;
  /** Feeds an update that arrived by push. */
  offer(update: Upload): void;
  cancel(): void;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

const isTerminal = (upload: Upload) => terminalStatuses.includes(upload.status);

export function watchUpload(options: WatchOptions): Watch {
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;
  let deadline = now() + (options.timeoutMs ?? 5 * 60_000);
  const stop = new AbortController();
  let last: Upload | undefined;
  let settled: Upload | undefined;
  /** Entering or leaving review (by poll or by push) starts the backoff over at the next wait. */
  let restartBackoff = false;

  const see = (upload: Upload) => {
    if (settled || upload.uploadId !== options.uploadId) return;
    if (last?.status !== upload.status) {
      options.onUpdate(upload);
      if ((last?.status === 'in_review') !== (upload.status === 'in_review')) restartBackoff = true;
      if (upload.status === 'in_review') deadline = Math.max(deadline, now() + (options.reviewTimeoutMs ?? REVIEW_WATCH_MS));
    }
    last = upload;
    if (isTerminal(upload)) {
      settled = upload;
      stop.abort();
    }
  };

  const backoff = () => (last?.status === 'in_review' ? reviewBackoff : options.pushActive() ? pushBackoff : pollingBackoff);

  const poll = async (): Promise<Upload | undefined> => {
    for (let attempt = 0; !stop.signal.aborted && now() < deadline; attempt += 1) {
      let retryAfterMs = 0;
      try {
        see(await options.fetchStatus(options.uploadId));
      } catch (err) {
        // The record always exists once the ticket is issued: a 404 will not heal.
        if (err instanceof ApiError && err.status === 404) throw err;
        // Anything else (network, 5xx, 429) is retried; honour the server's own pace.
        if (err instanceof ApiError && err.retryAfterSeconds) retryAfterMs = err.retryAfterSeconds * 1000;
      }
      if (settled) break;
      if (restartBackoff) {
        attempt = 0;
        restartBackoff = false;
      }
      // Chosen after the answer: it may have just entered or left review.
      const wait = Math.max(backoffDelay(backoff(), attempt), retryAfterMs);
      await sleep(Math.min(wait, Math.max(0, deadline - now())), stop.signal);
    }
    return settled;
  };

  return {
    result: poll(),
    offer: see,
    cancel: () => stop.abort(),
  };
}
