/** Subscribe's own settings, on top of the kit's common, AWS, table, auth, push endpoint and VAPID variables. */
import { env } from '@avatar-pipeline/kit';

export const subscribeEnv = {
  /** Devices per player; subscribing one more evicts the oldest. */
  PUSH_MAX_DEVICES: env.int(10, 1),
  /** Subscription changes (subscribe and unsubscribe) per player per window. */
  RATE_LIMIT_SUBSCRIPTIONS: env.int(20, 1),
  RATE_LIMIT_WINDOW_SECONDS: env.int(60, 1),
};
