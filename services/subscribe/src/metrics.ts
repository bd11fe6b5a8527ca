/** Subscription outcomes: `op` is created, updated, deleted or rejected; `code` names a rejection. */
import { Counter, type Registry } from 'prom-client';
import { zeroed } from '@avatar-pipeline/kit/metrics';

export type SubscriptionOp = 'created' | 'updated' | 'deleted' | 'rejected';

/** The successful ops start at 0; a rejection's series appears with its error code. */
export function subscriptionCounter(registry: Registry): Counter<'op' | 'code'> {
  return zeroed(
    new Counter<'op' | 'code'>({
      name: 'avatarpipeline_push_subscriptions_total',
      help: 'Push subscription requests by outcome (op), and error code for rejections',
      labelNames: ['op', 'code'],
      registers: [registry],
    }),
    (['created', 'updated', 'deleted'] satisfies SubscriptionOp[]).map((op) => ({ op })),
  );
}
