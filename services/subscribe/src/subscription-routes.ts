/**
 * POST and DELETE /v1/push/subscriptions: a player adds or removes a browser's subscription, only
 * ever under their own id (from the token), each change counted against their window.
 */
import type { Context, Next } from 'hono';
import type { Counter } from 'prom-client';
import { z } from 'zod';
import { asHttpError, HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { rateLimit, type RateLimiter } from '@avatar-pipeline/kit/rate-limit';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import type { Clock } from '@avatar-pipeline/kit/table';
import { EndpointInUseError, type PushEndpointPolicy, type SubscriptionStore } from '@avatar-pipeline/webpush';
import { BEARER, createRoute, errorResponses, json, jsonRequest, type ApiService } from '@avatar-pipeline/kit/openapi';
import { normaliseEndpoint, parseSubscription, subscriptionBodySchema, unsubscribeBodySchema } from './subscription.js';

export interface SubscribeSettings {
  policy: PushEndpointPolicy;
  maxDevices: number;
  rateLimit: { subscriptions: number; windowSeconds: number };
}

export interface SubscriptionRouteDeps {
  auth: AuthOptions;
  /** The caller's subscription window, counted before the body is read. */
  limiter: Pick<RateLimiter, 'scope' | 'enforce'>;
  subscriptions: SubscriptionStore;
  /** `avatarpipeline_push_subscriptions_total` (see metrics.ts). */
  outcomes: Counter<'op' | 'code'>;
  settings: SubscribeSettings;
  /** Now, for a subscription's expirationTime. */
  clock: Clock;
}

const receiptSchema = z
  .object({
    endpointHash: z.string().meta({ description: "The subscription's id: base64url SHA-256 of the endpoint" }),
    expirationTime: z.number().nullable().meta({ description: 'When the push service drops it (ms since the epoch), if it said' }),
  })
  .meta({ id: 'SubscriptionReceipt' });
export type SubscriptionReceipt = z.infer<typeof receiptSchema>;

/** What a 503 tells the caller: a dependency failed (the cause is logged, not answered). */
const UNAVAILABLE = 'subscriptions are unavailable right now; try again shortly';

export function subscriptionRoutes(app: ApiService['app'], deps: SubscriptionRouteDeps): void {
  const { subscriptions: store, outcomes, settings, clock } = deps;

  /** Counts refused requests (validation, conflicts) by their error code: a bounded set. */
  const countRejections = async (c: Context<AppEnv>, next: Next) => {
    await next();
    const refused = asHttpError(c.error);
    if (refused && refused.status < 500) outcomes.inc({ op: 'rejected', code: refused.code });
  };

  const guarded = [bearerAuth(deps.auth), rateLimit({ limiter: deps.limiter, unavailableMessage: UNAVAILABLE }), countRejections];

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
  app.openapi(subscribe, async (c) => {
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
  app.openapi(unsubscribe, async (c) => {
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
}
