/** The push service's own metrics (every label value comes from a fixed set). */
import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * What became of one device for one event: sent (2xx), pruned (404/410 or expired: subscription
 * deleted), rejected (another 4xx: our fault, not retried), failed (429/5xx/network after the
 * last attempt: the broker retries the event), skipped_duplicate (already notified for this
 * event), deferred (another delivery of the event holds the device's claim), refused_endpoint
 * (the endpoint or the address it resolves to is not allowed any more).
 */
export type Outcome = 'sent' | 'pruned' | 'rejected' | 'failed' | 'skipped_duplicate' | 'deferred' | 'refused_endpoint';
export type StatusClass = '2xx' | '3xx' | '4xx' | '5xx' | 'none';
export type PruneReason = 'gone' | 'expired' | 'endpoint_not_allowed';

export function statusClass(status: number | undefined): StatusClass {
  if (status === undefined) return 'none';
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  return status >= 500 && status < 600 ? '5xx' : 'none';
}

export function pushMetrics(registry: Registry) {
  return {
    notifications: new Counter<'outcome' | 'status_class'>({
      name: 'push_notifications_total',
      help: 'Notifications per device and event, by outcome and the HTTP status class of the last push service answer',
      labelNames: ['outcome', 'status_class'],
      registers: [registry],
    }),
    pruned: new Counter<'reason'>({
      name: 'push_subscriptions_pruned_total',
      help: 'Subscriptions deleted while sending, by reason (gone: 404/410, expired, endpoint_not_allowed)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    sendDuration: new Histogram<'status_class'>({
      name: 'push_send_duration_seconds',
      help: 'Duration of one HTTP request to a push service, by status class (none: no answer)',
      labelNames: ['status_class'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    unrecorded: new Counter({
      name: 'push_claims_unrecorded_total',
      help: 'Devices settled by the push service whose claim could not be marked done within the event budget (kept in the pod memory)',
      registers: [registry],
    }),
    signatures: new Counter({
      name: 'push_vapid_jwt_signatures_total',
      help: 'VAPID JWTs signed (one per push service origin per hour when the cache works)',
      registers: [registry],
    }),
  };
}

export type PushMetrics = ReturnType<typeof pushMetrics>;
