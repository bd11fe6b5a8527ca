/**
 * Sends one Web Push message to one subscription. web-push encrypts it (aes128gcm, a fresh key
 * and salt per message as RFC 8291 requires) and lays out the request; we send that request
 * ourselves over kept-alive connections (web-push would sign a new JWT and open a new connection
 * per message), at most `hostConcurrency` at a time per push service, and retry what is worth
 * retrying within the caller's deadline.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { Agent, type Dispatcher } from 'undici';
import webpush from 'web-push';
import { guardedLookup, type AddressResolver } from '@avatar-pipeline/kit';
import { statusClass, type PushMetrics } from './metrics.js';
import type { VapidSigner } from './vapid-jwt.js';

export interface PushTarget {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export type Urgency = 'very-low' | 'low' | 'normal' | 'high';

export interface PushMessage {
  payload: string;
  /** Seconds the push service keeps the message for an offline device. */
  ttlSeconds: number;
  urgency: Urgency;
  /** Replaces an undelivered message with the same topic (RFC 8030 §5.4). */
  topic?: string;
  /** Epoch ms after which no attempt starts (the event's time budget). */
  deadline: number;
}

export type SendResult =
  | { outcome: 'sent'; status: number; attempts: number }
  /** 404/410: the subscription no longer exists. */
  | { outcome: 'gone'; status: number; attempts: number }
  /** An answer retrying cannot change (400, 401, 403, 413...), or keys nothing can be encrypted for. */
  | { outcome: 'rejected'; status: number | undefined; attempts: number; detail: string }
  /** 429, 5xx or no answer on the last attempt, or no time left for another. */
  | { outcome: 'failed'; status: number | undefined; attempts: number; detail: string }
  /** The host resolved to a non-public address: never contacted. */
  | { outcome: 'refused'; attempts: number; detail: string };

export interface PushAgentOptions {
  /** Allows loopback and private addresses (local testing against web-push-testing). */
  allowHttp: boolean;
  /** Connections kept per push service (match the per-host concurrency). */
  connections: number;
  /** Longest single attempt: connect, answer headers, body. */
  attemptTimeoutMs: number;
  /** DNS resolution (injectable to simulate a name resolving to a private address). */
  resolve?: AddressResolver;
}

const CONNECT_TIMEOUT_MS = 5000;
/** Push services answer in a few bytes; anything longer is read no further. */
const MAX_RESPONSE_BYTES = 16 * 1024;
const DETAIL_CHARS = 200;

/** The keep-alive HTTP client for push services, resolving names through the address guard. */
export function createPushAgent(options: PushAgentOptions): Agent {
  return new Agent({
    connections: options.connections,
    keepAliveTimeout: 30_000,
    headersTimeout: options.attemptTimeoutMs,
    bodyTimeout: options.attemptTimeoutMs,
    maxResponseSize: MAX_RESPONSE_BYTES,
    connect: {
      timeout: Math.min(CONNECT_TIMEOUT_MS, options.attemptTimeoutMs),
      lookup: guardedLookup({ allowHttp: options.allowHttp }, options.resolve),
    },
  });
}

export interface PushSenderOptions {
  dispatcher: Dispatcher;
  vapid: VapidSigner;
  /** Requests in flight at once per push service origin. */
  hostConcurrency: number;
  /** Attempts per message, the first included. */
  maxAttempts: number;
  attemptTimeoutMs: number;
  metrics?: Pick<PushMetrics, 'sendDuration'>;
  /** Injected in tests so backoff and Retry-After waits are observed, not slept. */
  sleep?: (ms: number) => Promise<unknown>;
  now?: () => number;
  /** First backoff step; doubles per attempt (with jitter). */
  backoffMs?: number;
}

type Attempt =
  | { kind: 'done'; result: SendResult }
  | { kind: 'retry'; status: number | undefined; detail: string; retryAfterMs: number | undefined };

/** Retry-After as seconds or an HTTP date, in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const trimDetail = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, DETAIL_CHARS);

function isRefusedAddress(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 'ERR_PUSH_NON_PUBLIC_ADDRESS') return true;
  }
  return false;
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  return trimDetail(code ?? String(e.message ?? err));
}

export class PushSender {
  private readonly limits = new Map<string, LimitFunction>();
  private readonly sleep: (ms: number) => Promise<unknown>;
  private readonly now: () => number;
  private readonly backoffMs: number;

  constructor(private readonly options: PushSenderOptions) {
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    this.now = options.now ?? Date.now;
    this.backoffMs = options.backoffMs ?? 250;
  }

  async send(target: PushTarget, message: PushMessage): Promise<SendResult> {
    const url = new URL(target.endpoint);
    const authorization = await this.options.vapid.authorization(url.origin);
    let details: webpush.RequestDetails;
    try {
      // Encrypted once: a retry re-sends the same record.
      details = webpush.generateRequestDetails(target, message.payload, {
        TTL: message.ttlSeconds,
        urgency: message.urgency,
        ...(message.topic ? { topic: message.topic } : {}),
        contentEncoding: 'aes128gcm',
        // null (not undefined) so web-push never signs a JWT of its own.
        vapidDetails: null as unknown as undefined,
        headers: { Authorization: authorization },
      });
    } catch (err) {
      return { outcome: 'rejected', status: undefined, attempts: 0, detail: trimDetail(`cannot encrypt for this subscription: ${(err as Error).message}`) };
    }
    const headers = Object.fromEntries(Object.entries(details.headers).map(([name, value]) => [name, String(value)]));

    let last: Extract<Attempt, { kind: 'retry' }> | undefined;
    let attempts = 0;
    while (attempts < this.options.maxAttempts) {
      if (message.deadline <= this.now()) break;
      attempts += 1;
      const attempt = await this.limited(url.origin, () => this.attempt(url, headers, details.body, message.deadline));
      if (attempt.kind === 'done') return { ...attempt.result, attempts };
      last = attempt;
      if (attempts >= this.options.maxAttempts) break;
      // Exponential backoff with jitter, or longer if the push service asked; never past the deadline.
      const backoff = this.backoffMs * 2 ** (attempts - 1) * (0.5 + Math.random() / 2);
      const wait = Math.max(backoff, attempt.retryAfterMs ?? 0);
      if (this.now() + wait >= message.deadline) break;
      await this.sleep(wait);
    }
    return { outcome: 'failed', status: last?.status, attempts, detail: last?.detail ?? 'no time left to send' };
  }

  /** Runs `fn` under the origin's limiter; limiters are dropped when idle, so the map holds busy origins only. */
  private limited<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    let limit = this.limits.get(origin);
    if (!limit) {
      limit = pLimit(this.options.hostConcurrency);
      this.limits.set(origin, limit);
    }
    const used = limit;
    return used(fn).finally(() => {
      if (used.activeCount === 0 && used.pendingCount === 0 && this.limits.get(origin) === used) this.limits.delete(origin);
    });
  }

  private async attempt(url: URL, headers: Record<string, string>, body: Buffer | null, deadline: number): Promise<Attempt> {
    // Measured once the limiter lets the request go: time spent queued counts against the deadline.
    const timeoutMs = Math.min(deadline - this.now(), this.options.attemptTimeoutMs);
    if (timeoutMs <= 0) return { kind: 'retry', status: undefined, detail: 'no time left to send', retryAfterMs: undefined };
    const started = performance.now();
    let res: Dispatcher.ResponseData;
    try {
      res = await this.options.dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      this.options.metrics?.sendDuration.observe({ status_class: 'none' }, (performance.now() - started) / 1000);
      if (isRefusedAddress(err)) return { kind: 'done', result: { outcome: 'refused', attempts: 0, detail: describeError(err) } };
      return { kind: 'retry', status: undefined, detail: describeError(err), retryAfterMs: undefined };
    }
    const status = res.statusCode;
    const ok = status >= 200 && status < 300;
    const text = ok ? '' : await res.body.text().catch(() => '');
    if (ok) await res.body.dump();
    this.options.metrics?.sendDuration.observe({ status_class: statusClass(status) }, (performance.now() - started) / 1000);

    if (ok) return { kind: 'done', result: { outcome: 'sent', status, attempts: 0 } };
    if (status === 404 || status === 410) return { kind: 'done', result: { outcome: 'gone', status, attempts: 0 } };
    const detail = trimDetail(text);
    if (status === 429 || status >= 500) {
      return { kind: 'retry', status, detail, retryAfterMs: parseRetryAfter(header(res.headers, 'retry-after'), this.now()) };
    }
    return { kind: 'done', result: { outcome: 'rejected', status, attempts: 0, detail } };
  }
}
