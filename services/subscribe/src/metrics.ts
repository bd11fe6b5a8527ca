/** Subscription outcomes: `op` is created, updated, deleted or rejected; `code` names a rejection. */
import { Counter, type Registry } from 'prom-client';

export type SubscriptionOp = 'created' | 'updated' | 'deleted' | 'rejected';

export function subscriptionCounter(registry: Registry): Counter<'op' | 'code'> {
  return new Counter({
    name: 'push_subscriptions_total',
    help: 'Push subscription requests by outcome (op), and error code for rejections',
    labelNames: ['op', 'code'],
    registers: [registry],
  });
}
