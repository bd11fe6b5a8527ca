/**
 * Subscribe: stores players' Web Push subscriptions and serves the VAPID public key browsers
 * subscribe with. A player only ever adds or removes subscriptions under their own id (from the
 * token); endpoints are checked against the push endpoint policy so that push never calls a URL
 * a client chose freely.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context, Next } from 'hono';
import { z } from 'zod';
import { asHttpError, HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { Metrics } from '@avatar-pipeline/kit/metrics';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { RateLimiter, rateLimit, type playerRateLimitScopes } from '@avatar-pipeline/kit/rate-limit';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import type { AppEnv, Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { EndpointInUseError, SubscriptionStore, type PushEndpointPolicy } from '@avatar-pipeline/webpush';
import { BEARER, createApiService, createRoute, errorResponses, json, jsonRequest, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { subscriptionCounter } from './metrics.js';
import { normaliseEndpoint, parseSubscription, subscriptionBodySchema, unsubscribeBodySchema } from './subscription.js';

export interface SubscribeSettings {
  table: string;
  policy: PushEndpointPolicy;
  maxDevices: number;
  rateLimit: { subscriptions: number; windowSeconds: number };
}

export interface SubscribeDeps {
  logger: Logger;
  doc: DynamoDBDocumentClient;
  auth: AuthOptions;
  /** The VAPID public key (base64url), read and checked against its private key at start-up. */
  vapidPublicKey: string;
  settings: SubscribeSettings;
  clock?: Clock;
  metrics?: Metrics;
}

const receiptSchema = z
  .object({
    endpointHash: z.string().meta({ description: "The subscription's id: base64url SHA-256 of the endpoint" }),
    expirationTime: z.number().nullable().meta({ description: 'When the push service drops it (ms since the epoch), if it said' }),
  })
  .meta({ id: 'SubscriptionReceipt' });
export type SubscriptionReceipt = z.infer<typeof receiptSchema>;

const vapidKeySchema = z
  .object({ publicKey: z.string().meta({ description: "The VAPID public key (base64url, uncompressed P-256 point): pushManager.subscribe's applicationServerKey" }) })
  .meta({ id: 'VapidPublicKey' });

const getVapidKey = createRoute({
  method: 'get',
  path: '/v1/push/vapid-public-key',
  tags: ['push'],
  summary: 'The key browsers subscribe with',
  responses: { 200: json(vapidKeySchema, 'The key') },
});

/** What a 503 tells the caller: a dependency failed (the cause is logged, not answered). */
const UNAVAILABLE = 'subscriptions are unavailable right now; try again shortly';

export function createSubscribeService(deps: SubscribeDeps): Service {
  const { doc, settings } = deps;
  const clock = deps.clock ?? systemClock;
  const service = createApiService({
    name: 'subscribe',
    logger: deps.logger,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    readiness: { table: tableReadiness(doc, settings.table) },
  });
  const outcomes = subscriptionCounter(service.metrics.registry);
  const store = new SubscriptionStore(doc, settings.table, clock);
  const limiter = new RateLimiter(doc, settings.table, {
    scope: 'subscriptions' satisfies (typeof playerRateLimitScopes)[number],
    limit: settings.rateLimit.subscriptions,
    windowSeconds: settings.rateLimit.windowSeconds,
    clock,
    registry: service.metrics.registry,
  });
  const auth = bearerAuth(deps.auth);

  /** Counts refused requests (validation, conflicts) by their error code: a bounded set. */
  const countRejections = async (c: Context<AppEnv>, next: Next) => {
    await next();
    const refused = asHttpError(c.error);
    if (refused && refused.status < 500) outcomes.inc({ op: 'rejected', code: refused.code });
  };

  const guarded = [auth, rateLimit({ limiter, unavailableMessage: UNAVAILABLE }), countRejections];
  service.app.openapi(getVapidKey, (c) => {
    c.header('Cache-Control', 'public, max-age=300');
    return c.json({ publicKey: deps.vapidPublicKey }, 200);
  });

  const subscribe = createRoute({
    method: 'post',
    path: '/v1/push/subscriptions',
    tags: ['push'],
    summary: "Store this browser's push subscription for the caller",
    description: "A player's devices are kept up to the device limit, the oldest evicted first; the endpoint must be one of the allowed push services.",
    security: [{ [BEARER]: [] }],
    middleware: guarded,
    request: { body: jsonRequest(subscriptionBodySchema.meta({ id: 'PushSubscription', description: "The browser's PushSubscription.toJSON()" })) },
    responses: {
      200: json(receiptSchema, 'Already stored: refreshed'),
      201: json(receiptSchema, 'Stored'),
      ...errorResponses(400, 401, 409, 413, 415, 429, 503),
    },
  });
  service.app.openapi(subscribe, async (c) => {
    const playerId = c.get('playerId');
    const subscription = parseSubscription(c.req.valid('json'), settings.policy, clock());
    const log = c.get('log').child({ playerId });
    let result;
    try {
      result = await store.upsert(playerId, subscription, { maxDevices: settings.maxDevices });
    } catch (err) {
      if (err instanceof EndpointInUseError) {
        log.warn('endpoint held by another player under other keys');
        throw new HttpError(409, 'endpoint_in_use', 'this endpoint is registered with different keys; subscribe again in the browser to get a new endpoint');
      }
      throw unavailable('storing the subscription failed', err, { message: UNAVAILABLE, logFields: { playerId } });
    }
    const { status, subscription: stored, evicted, movedFrom } = result;
    outcomes.inc({ op: status });
    log.info({ endpointHash: stored.hash, status, evicted, ...(movedFrom ? { movedFrom } : {}) }, 'subscription stored');
    c.header('Cache-Control', 'no-store');
    const receipt: SubscriptionReceipt = { endpointHash: stored.hash, expirationTime: stored.expirationTime };
    return c.json(receipt, status === 'created' ? 201 : 200);
  });

  const unsubscribe = createRoute({
    method: 'delete',
    path: '/v1/push/subscriptions',
    tags: ['push'],
    summary: "Remove one of the caller's subscriptions, by endpoint",
    security: [{ [BEARER]: [] }],
    middleware: guarded,
    request: { body: jsonRequest(unsubscribeBodySchema.meta({ id: 'PushUnsubscription' })) },
    responses: {
      204: { description: 'Removed, or was not there' },
      ...errorResponses(400, 401, 413, 415, 429, 503),
    },
  });
  service.app.openapi(unsubscribe, async (c) => {
    const playerId = c.get('playerId');
    const log = c.get('log').child({ playerId });
    let existed: boolean;
    try {
      // Only ever the caller's own item: another player's endpoint is simply not found.
      existed = await store.remove(playerId, normaliseEndpoint(c.req.valid('json').endpoint));
    } catch (err) {
      throw unavailable('removing the subscription failed', err, { message: UNAVAILABLE, logFields: { playerId } });
    }
    if (existed) outcomes.inc({ op: 'deleted' });
    log.info({ existed }, 'subscription removed');
    return c.body(null, 204);
  });
  serveOpenApi(service.app, { title: 'avatar-pipeline push subscriptions (subscribe)', description: "Browsers' Web Push subscriptions and the VAPID key" });

  return service;
}
