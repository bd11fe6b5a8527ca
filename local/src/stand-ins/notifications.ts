/**
 * Delivers s3rver's bucket notifications to s3-source's webhook, as MinIO's webhook target would
 * in the cluster: only ObjectCreated events under `uploads/` (the bucket's notification
 * configuration), in order, retried until s3-source takes them (it may still be starting or be
 * restarting), never dropped while the stack runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';

export interface S3Notification {
  Records: unknown[];
}

interface S3Record {
  eventName?: unknown;
  s3?: { object?: { key?: unknown } };
}

/** The bucket's notification configuration: object creation under the uploads prefix. */
export function isUploadCreated(record: unknown): boolean {
  const r = record as S3Record | null;
  return typeof r?.eventName === 'string' && r.eventName.startsWith('ObjectCreated:') && typeof r.s3?.object?.key === 'string' && r.s3.object.key.startsWith(UPLOAD_PREFIX);
}

export interface ForwarderOptions {
  /** The webhook URL, or undefined while no s3-source runs (notifications are then dropped with a warning). */
  target: () => string | undefined;
  /** Bearer token the webhook requires (MinIO's `auth_token`). */
  token?: string;
  logger: Logger;
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export interface NotificationForwarder {
  push(notification: S3Notification): void;
  /** Resolves once every queued notification was delivered. */
  idle(): Promise<void>;
  /** Stops delivering; what is still queued is reported and dropped. */
  close(): Promise<void>;
}

/** 4xx other than these means s3-source refuses the payload itself: retrying cannot help. */
const retriedStatuses = new Set([404, 408, 409, 429]);

export function createNotificationForwarder(options: ForwarderOptions): NotificationForwarder {
  const { logger } = options;
  const queue: S3Notification[] = [];
  const stopped = new AbortController();
  let running: Promise<void> | undefined;
  const idleWaiters: (() => void)[] = [];

  /** Resolves true once the notification is settled (delivered or refused), false if stopped first. */
  async function deliver(notification: S3Notification): Promise<boolean> {
    const body = JSON.stringify(notification);
    for (let attempt = 0; !stopped.signal.aborted; attempt++) {
      const url = options.target();
      if (!url) {
        logger.warn({ records: notification.Records.length }, 's3-source is not running; dropping an S3 notification');
        return true;
      }
      let problem: string;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
          body,
          signal: AbortSignal.any([stopped.signal, AbortSignal.timeout(10_000)]),
        });
        const text = await res.text();
        if (res.ok) return true;
        if (res.status < 500 && !retriedStatuses.has(res.status)) {
          logger.error({ status: res.status, response: text.slice(0, 500) }, 's3-source refused an S3 notification; dropping it');
          return true;
        }
        problem = `answered ${res.status}`;
      } catch (err) {
        if (stopped.signal.aborted) break;
        problem = (err as Error).message;
      }
      const delayMs = Math.min((options.retryDelayMs ?? 200) * 2 ** attempt, options.maxRetryDelayMs ?? 5000);
      // The first miss is expected while s3-source starts or restarts; persistent ones are worth a warning.
      logger[attempt >= 2 ? 'warn' : 'debug']({ attempt: attempt + 1, problem, retryInMs: delayMs }, 'S3 notification not delivered to s3-source; retrying');
      await sleep(delayMs, undefined, { signal: stopped.signal }).catch(() => undefined);
    }
    return false;
  }

  async function drain(): Promise<void> {
    while (queue.length > 0 && (await deliver(queue[0]!))) queue.shift();
    running = undefined;
    for (const wake of idleWaiters.splice(0)) wake();
  }

  return {
    push(notification) {
      const records = notification.Records.filter(isUploadCreated);
      if (records.length === 0 || stopped.signal.aborted) return;
      queue.push({ ...notification, Records: records });
      running ??= drain();
    },
    idle: () => (running ? new Promise<void>((resolve) => idleWaiters.push(resolve)) : Promise.resolve()),
    async close() {
      stopped.abort();
      await running;
      if (queue.length > 0) logger.warn({ notifications: queue.length }, 'stopping with undelivered S3 notifications');
      queue.length = 0;
    },
  };
}
