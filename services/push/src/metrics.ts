/** The push service's own metrics (every label value comes from a fixed set). */
import { Counter, Histogram, type Registry } from 'prom-client';
import { labelCombinations, zeroed } from '@avatar-pipeline/kit/metrics';

/**
 * What became of one device for one event: sent (2xx), pruned (404/410 or expired: subscription
 * deleted), rejected (another 4xx: our fault, not retried), failed (429/5xx/network after the
 * last attempt: the broker retries the event), skipped_duplicate (already notified for this
 * event), deferred (another delivery of the event holds the device's claim), refused_endpoint
 * (the endpoint or the address it resolves to is not allowed any more).
 */
export const notificationOutcomes = ['sent', 'pruned', 'rejected', 'failed', 'skipped_duplicate', 'deferred', 'refused_endpoint'] as const;
export type Outcome = (typeof notificationOutcomes)[number];
export const statusClasses = ['2xx', '3xx', '4xx', '5xx', 'none'] as const;
export type StatusClass = (typeof statusClasses)[number];
export const pruneReasons = ['gone', 'expired', 'endpoint_not_allowed'] as const;
export type PruneReason = (typeof pruneReasons)[number];

export function statusClass(status: number | undefined): StatusClass {
  if (status === undefined) return 'none';
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  return status >= 500 && status < 600 ? '5xx' : 'none';
}

export function pushMetrics(registry: Registry) {
  return {
    notifications: zeroed(
      new Counter<'outcome' | 'status_class'>({
        name: 'avatarpipeline_push_notifications_total',
        help: 'Notifications per device and event, by outcome and the HTTP status class of the last push service answer',
        labelNames: ['outcome', 'status_class'],
        registers: [registry],
      }),
      labelCombinations({ outcome: notificationOutcomes, status_class: statusClasses }),
    ),
    pruned: zeroed(
      new Counter<'reason'>({
        name: 'avatarpipeline_push_subscriptions_pruned_total',
        help: 'Subscriptions deleted while sending, by reason (gone: 404/410, expired, endpoint_not_allowed)',
        labelNames: ['reason'],
        registers: [registry],
      }),
      pruneReasons.map((reason) => ({ reason })),
    ),
    sendDuration: zeroed(
      new Histogram<'status_class'>({
        name: 'avatarpipeline_push_send_duration_seconds',
        help: 'Duration of one HTTP request to a push service, by status class (none: no answer)',
        labelNames: ['status_class'],
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
      statusClasses.map((status_class) => ({ status_class })),
    ),
    unrecorded: new Counter({
      name: 'avatarpipeline_push_claims_unrecorded_total',
      help: 'Devices settled by the push service whose claim could not be marked done within the event budget (kept in the pod memory)',
      registers: [registry],
    }),
    signatures: new Counter({
      name: 'avatarpipeline_push_vapid_jwt_signatures_total',
      help: 'VAPID JWTs signed (one per push service origin per hour when the cache works)',
      registers: [registry],
    }),
  };
}

export type PushMetrics = ReturnType<typeof pushMetrics>;
