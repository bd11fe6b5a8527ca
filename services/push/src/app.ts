/**
 * The push service: tells every device of a player how an upload ended (POST /events with
 * `avatarpipeline.avatar.ready`, `.rejected`, `.failed` or `.expired`; and that one waits for a
 * moderator: `.review_requested`) over standard Web Push.
 */
import type { Dispatcher } from 'undici';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { pushEndpointPolicy } from '@avatar-pipeline/webpush';
import { loadVapidKeys, type VapidKeyStore } from '@avatar-pipeline/webpush';
import type { PushConfig } from './config.js';
import { pushMetrics } from './metrics.js';
import { notificationRoutes } from './notify.js';
import { PushSender } from './sender.js';
import type { PushStores } from './stores.js';
import { playerTopics } from './topic.js';
import { VapidSigner } from './vapid-jwt.js';

export type PushServiceConfig = Pick<
  PushConfig,
  'VAPID_SUBJECT' | 'PUSH_TTL_SECONDS' | 'PUSH_ALLOWED_HOSTS' | 'PUSH_ALLOW_HTTP' | 'PUSH_HOST_CONCURRENCY' | 'PUSH_MAX_ATTEMPTS' | 'PUSH_TIMEOUT_MS'
>;

export interface PushDeps {
  config: PushServiceConfig;
  stores: PushStores;
  /** Where the VAPID key pair is read at start-up. */
  vapidStore: VapidKeyStore;
  /** The HTTP client for push services (see `createPushAgent`). */
  dispatcher: Dispatcher;
  logger: Logger;
  /** Now, for VAPID tokens and the event's time budget (the stores have their own). */
  clock?: Clock;
  /** Backoff and Retry-After waits (tests observe them instead of sleeping). */
  sleep?: (ms: number) => Promise<unknown>;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

/** Each attempt gets an equal share of the event's budget, so one hung request leaves room for a retry. */
export function attemptTimeoutMs(config: Pick<PushConfig, 'PUSH_TIMEOUT_MS' | 'PUSH_MAX_ATTEMPTS'>): number {
  return Math.ceil(config.PUSH_TIMEOUT_MS / config.PUSH_MAX_ATTEMPTS);
}

/**
 * Loads the VAPID key pair first: a pair whose public key is not the private key's (or no pair)
 * rejects, and the service does not start, since every push would carry a key browsers never saw.
 */
export async function createPushService(deps: PushDeps): Promise<Service> {
  const { config, stores } = deps;
  const clock = deps.clock ?? systemClock;
  const keys = await loadVapidKeys(deps.vapidStore);

  const service = createService({
    name: 'push',
    logger: deps.logger,
    readiness: { dynamodb: stores.ready },
    eventAuth: deps.eventAuth,
  });
  const metrics = pushMetrics(service.metrics.registry);
  const now = () => clock().getTime();
  const vapid = new VapidSigner({ keys, subject: config.VAPID_SUBJECT, clock, onSign: () => metrics.signatures.inc() });
  const sender = new PushSender({
    dispatcher: deps.dispatcher,
    vapid,
    hostConcurrency: config.PUSH_HOST_CONCURRENCY,
    maxAttempts: config.PUSH_MAX_ATTEMPTS,
    attemptTimeoutMs: attemptTimeoutMs(config),
    metrics,
    now,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  });

  const routes = notificationRoutes({
    subscriptions: stores.subscriptions,
    claims: stores.claims,
    sender,
    policy: pushEndpointPolicy(config),
    metrics,
    topicFor: playerTopics(keys.privateKey),
    ttlSeconds: config.PUSH_TTL_SECONDS,
    timeoutMs: config.PUSH_TIMEOUT_MS,
    now,
  });
  service.app.post('/events', eventEndpoint(service, routes));
  return service;
}
