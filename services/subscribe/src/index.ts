export { createSubscribeService, type SubscribeDeps } from './app.js';
export { subscribeEnv } from './config.js';
export { subscribeStores, type SubscribeStores } from './stores.js';
export { normaliseEndpoint, parseSubscription, subscriptionBodySchema, unsubscribeBodySchema } from './subscription.js';
export type { SubscribeSettings, SubscriptionReceipt } from './subscription-routes.js';
