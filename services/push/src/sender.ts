/**
 * Sends one Web Push message to one subscription: encrypted here (aes128gcm, a fresh key pair and
 * salt per message as RFC 8291 requires, see encrypt.ts), signed with a cached VAPID header, and
 * sent over kept-alive connections (web-push would sign a new JWT and open a new connection per
 * message), at most `hostConcurrency` at a time per push service, retrying what is worth
 * retrying within the caller's deadline.
 *
 * Per message the CPU goes mostly to the ECDH agreement (bench/push.mjs measures it); the rest
 * is kept lean: undici's `dispatch` with a small handler (no response stream), a cleared timer
 * instead of an AbortSignal.timeout (whose timer would still fire long after the answer), and a
 * plain counter for the per-host limit.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import { describeError } from '@avatar-pipeline/kit/errors';
import { guardedLookup, type AddressResolver } from '@avatar-pipeline/webpush';
import { PushEncryptor } from './encrypt.js';
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

/** A push service's answer; the body is read only when the status is not 2xx. */
interface Answer {
  status: number;
  retryAfter: string | undefined;
  text: string;
}

/**
 * One request through `dispatcher`, aborted with a TimeoutError after `timeoutMs` (an abort
 * before the request reaches a socket takes effect when it does, as with an AbortSignal).
 * Rejects only when no answer arrived; the body is read (up to the agent's response limit)
 * only when the status is not 2xx.
 */
function post(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let timedOut: Error | undefined;
    let status = 0;
    let retryAfter: string | undefined;
    let chunks: Buffer[] | undefined;
    const timer = setTimeout(() => {
      timedOut = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
      controller?.abort(timedOut);
    }, timeoutMs);
    dispatcher.dispatch(options, {
      onRequestStart(started) {
        controller = started;
        if (timedOut) started.abort(timedOut);
      },
      onResponseStart(_, statusCode, headers) {
        status = statusCode;
        const ok = status >= 200 && status < 300;
        const value = ok ? undefined : headers['retry-after'];
        retryAfter = Array.isArray(value) ? value[0] : value;
        chunks = ok ? undefined : [];
      },
      onResponseData(_, chunk) {
        chunks?.push(chunk);
      },
      onResponseEnd() {
        clearTimeout(timer);
        resolve({ status, retryAfter, text: chunks ? Buffer.concat(chunks).toString('utf8') : '' });
      },
      onResponseError(_, err) {
        clearTimeout(timer);
        // Once the status line is in, it decides: a body cut short (too long, too slow) changes nothing.
        if (status >= 200) resolve({ status, retryAfter, text: chunks ? Buffer.concat(chunks).toString('utf8') : '' });
        else reject(err);
      },
    });
  });
}

const trimDetail = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, DETAIL_CHARS);

function isRefusedAddress(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 'ERR_PUSH_NON_PUBLIC_ADDRESS') return true;
  }
  return false;
}

/** A failed send in a few words: the network error's code (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT) when it has one, else the error in one line. */
function failureDetail(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  return trimDetail(code ?? describeError(err));
}

/** RFC 8030 §5.4: at most 32 characters of the base64url alphabet. */
const TOPIC = /^[A-Za-z0-9_-]{1,32}$/;

/** The request headers (RFC 8030 TTL, Urgency, Topic; RFC 8292 VAPID); throws on values no push service would take. */
function requestHeaders(message: PushMessage, authorization: string, encrypted: boolean): Record<string, string> {
  if (!Number.isSafeInteger(message.ttlSeconds) || message.ttlSeconds < 0) throw new RangeError(`TTL ${message.ttlSeconds} is not a whole number of seconds`);
  const headers: Record<string, string> = { TTL: String(message.ttlSeconds), Urgency: message.urgency, Authorization: authorization };
  if (message.topic) {
    if (!TOPIC.test(message.topic)) throw new RangeError('the topic must be at most 32 characters of the base64url alphabet');
    headers.Topic = message.topic;
  }
  if (encrypted) {
    headers['Content-Type'] = 'application/octet-stream';
    headers['Content-Encoding'] = 'aes128gcm';
  }
  return headers;
}

/** Requests in flight to one push service, at most `max`; the others wait their turn in order. */
class HostLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  get idle(): boolean {
    return this.active === 0;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A finishing request hands its slot straight to the next one waiting, so `active` counts both.
    if (this.active < this.max) this.active += 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

export class PushSender {
  private readonly limits = new Map<string, HostLimit>();
  private readonly encryptor = new PushEncryptor();
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
    let headers: Record<string, string>;
    let body: Buffer | null;
    try {
      // Encrypted once: a retry re-sends the same record. No payload, no body (as web-push does).
      body = message.payload === '' ? null : this.encryptor.encrypt(target.keys, message.payload);
      headers = requestHeaders(message, authorization, body !== null);
    } catch (err) {
      return { outcome: 'rejected', status: undefined, attempts: 0, detail: trimDetail(`cannot encrypt for this subscription: ${(err as Error).message}`) };
    }
    const request: Dispatcher.DispatchOptions = { origin: url.origin, path: `${url.pathname}${url.search}`, method: 'POST', headers, body };

    let last: Extract<Attempt, { kind: 'retry' }> | undefined;
    let attempts = 0;
    while (attempts < this.options.maxAttempts) {
      if (message.deadline <= this.now()) break;
      attempts += 1;
      const attempt = await this.limited(url.origin, () => this.attempt(request, message.deadline));
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

  /** Runs `fn` under the origin's limit; limits are dropped when idle, so the map holds busy origins only. */
  private async limited<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    let limit = this.limits.get(origin);
    if (!limit) {
      limit = new HostLimit(this.options.hostConcurrency);
      this.limits.set(origin, limit);
    }
    try {
      return await limit.run(fn);
    } finally {
      if (limit.idle && this.limits.get(origin) === limit) this.limits.delete(origin);
    }
  }

  private async attempt(request: Dispatcher.DispatchOptions, deadline: number): Promise<Attempt> {
    // Measured once the limiter lets the request go: time spent queued counts against the deadline.
    const timeoutMs = Math.min(deadline - this.now(), this.options.attemptTimeoutMs);
    if (timeoutMs <= 0) return { kind: 'retry', status: undefined, detail: 'no time left to send', retryAfterMs: undefined };
    const started = performance.now();
    let answer: Answer;
    try {
      answer = await post(this.options.dispatcher, request, timeoutMs);
    } catch (err) {
      this.options.metrics?.sendDuration.observe({ status_class: 'none' }, (performance.now() - started) / 1000);
      if (isRefusedAddress(err)) return { kind: 'done', result: { outcome: 'refused', attempts: 0, detail: failureDetail(err) } };
      return { kind: 'retry', status: undefined, detail: failureDetail(err), retryAfterMs: undefined };
    }
    const { status } = answer;
    this.options.metrics?.sendDuration.observe({ status_class: statusClass(status) }, (performance.now() - started) / 1000);

    if (status >= 200 && status < 300) return { kind: 'done', result: { outcome: 'sent', status, attempts: 0 } };
    if (status === 404 || status === 410) return { kind: 'done', result: { outcome: 'gone', status, attempts: 0 } };
    const detail = trimDetail(answer.text);
    if (status === 429 || status >= 500) {
      return { kind: 'retry', status, detail, retryAfterMs: parseRetryAfter(answer.retryAfter, this.now()) };
    }
    return { kind: 'done', result: { outcome: 'rejected', status, attempts: 0, detail } };
  }
}
