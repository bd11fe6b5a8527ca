/**
 * Subscribe: stores players' Web Push subscriptions (see subscription-routes.ts) and serves the
 * VAPID public key browsers subscribe with (vapid-key.ts). Endpoints are checked against the push
 * endpoint policy so that push never calls a URL a client chose freely.
 */
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { Metrics } from '@avatar-pipeline/kit/metrics';
import type { AuthOptions } from '@avatar-pipeline/kit/player-auth';
import type { Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { createApiService, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { subscriptionCounter } from './metrics.js';
import type { SubscribeStores } from './stores.js';
import { subscriptionRoutes, type SubscribeSettings } from './subscription-routes.js';
import { vapidKeyRoute } from './vapid-key.js';

export interface SubscribeDeps {
  logger: Logger;
  stores: SubscribeStores;
  auth: AuthOptions;
  /** The VAPID public key (base64url), read and checked against its private key at start-up. */
  vapidPublicKey: string;
  settings: SubscribeSettings;
  /** Now, for a subscription's expirationTime (the stores have their own). */
  clock?: Clock;
  metrics?: Metrics;
}

export function createSubscribeService(deps: SubscribeDeps): Service {
  const { stores, settings } = deps;
  const service = createApiService({
    name: 'subscribe',
    logger: deps.logger,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    readiness: { table: stores.ready },
  });
  const { registry } = service.metrics;
  const outcomes = subscriptionCounter(registry);
  const limiter = stores.rateLimiter({ scope: 'subscriptions', limit: settings.rateLimit.subscriptions, windowSeconds: settings.rateLimit.windowSeconds, registry });

  vapidKeyRoute(service.app, deps.vapidPublicKey);
  subscriptionRoutes(service.app, { auth: deps.auth, limiter, subscriptions: stores.subscriptions, outcomes, settings, clock: deps.clock ?? systemClock });
  serveOpenApi(service.app, { title: 'avatar-pipeline push subscriptions (subscribe)', description: "Browsers' Web Push subscriptions and the VAPID key" });

  return service;
}
