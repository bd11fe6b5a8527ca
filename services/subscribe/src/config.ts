/** Subscribe's environment: the kit's common, AWS, table, player-auth and push endpoint variables, the VAPID store's, and its own. */
import { awsEnv, commonEnv, env, tableEnv } from '@avatar-pipeline/kit/config';
import { authEnv } from '@avatar-pipeline/kit/player-auth-config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';
import { pushEndpointEnv } from '@avatar-pipeline/webpush';
import { vapidEnv } from '@avatar-pipeline/webpush';

export const subscribeEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...tableEnv,
  ...authEnv,
  ...vapidEnv,
  ...pushEndpointEnv,
  PUSH_MAX_DEVICES: env.int(10, 1).describe('Subscriptions per player; one more evicts the oldest.'),
  RATE_LIMIT_SUBSCRIPTIONS: env.int(20, 1).describe('Subscription changes (subscribe and unsubscribe) per player per window.'),
  RATE_LIMIT_WINDOW_SECONDS: env.int(60, 1).describe('The rate-limit window.'),
};
