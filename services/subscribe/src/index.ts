export { createSubscribeService, type SubscribeDeps, type SubscribeSettings, type SubscriptionReceipt } from './app.js';
export { subscribeEnv } from './config.js';
export { normaliseEndpoint, parseSubscription, subscriptionBodySchema, unsubscribeBodySchema } from './subscription.js';
