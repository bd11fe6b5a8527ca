/**
 * Follows one upload to its outcome. Pushes are the fast path; polling `GET /v1/uploads/{id}`
 * always runs beside them as the safety net (a push may be lost, late, or never subscribed), with
 * a backoff that is gentle while pushes are expected and brisk while they are not.
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
  const deadline = now() + (options.timeoutMs ?? 5 * 60_000);
  const stop = new AbortController();
  let last: Upload | undefined;
  let settled: Upload | undefined;

  const see = (upload: Upload) => {
    if (settled || upload.uploadId !== options.uploadId) return;
    if (last?.status !== upload.status) options.onUpdate(upload);
    last = upload;
    if (isTerminal(upload)) {
      settled = upload;
      stop.abort();
    }
  };

  const poll = async (): Promise<Upload | undefined> => {
    for (let attempt = 0; !stop.signal.aborted && now() < deadline; attempt += 1) {
      const backoff = options.pushActive() ? pushBackoff : pollingBackoff;
      let wait = backoffDelay(backoff, attempt);
      try {
        see(await options.fetchStatus(options.uploadId));
      } catch (err) {
        // The record always exists once the ticket is issued: a 404 will not heal.
        if (err instanceof ApiError && err.status === 404) throw err;
        // Anything else (network, 5xx, 429) is retried; honour the server's own pace.
        if (err instanceof ApiError && err.retryAfterSeconds) wait = Math.max(wait, err.retryAfterSeconds * 1000);
      }
      if (settled) break;
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
