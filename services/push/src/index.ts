export { attemptTimeoutMs, createPushService, type PushDeps, type PushServiceConfig } from './app.js';
export { pushEnv, vapidSubjectSchema, type PushConfig } from './config.js';
export { DeliveryClaims, claimLeaseMs, type Claim } from './claims.js';
export { pushMetrics, type Outcome, type PushMetrics } from './metrics.js';
export { MAX_PAYLOAD_BYTES, encodeNotification, notificationFor, type Notification, type OutcomeEvent } from './payload.js';
export { pushStores, type PushStores } from './stores.js';
export { PushSender, createPushAgent, parseRetryAfter, type PushMessage, type PushTarget, type SendResult, type Urgency } from './sender.js';
export { playerTopics } from './topic.js';
export { VapidSigner, VAPID_TOKEN_LIFETIME_SECONDS, VAPID_TOKEN_REFRESH_SECONDS } from './vapid-jwt.js';
