/**
 * A dev-only stand-in for a Knative multi-tenant Broker, driven by the kit topology: CloudEvents
 * ingress (`POST /` or `POST /<namespace>/<broker>`), trigger filters, binary-mode delivery with
 * per-attempt timeout and retries, replies fed back into the broker, dead-letter sink with the
 * `knativeerror*` extensions, retried on its own policy (as the cluster's durable dead-letter broker
 * redelivers to profile). Where even that fails, this keeps the event in memory, logs and counts it
 * and lists it at `GET /_broker/undeliverable`. `GET /_broker/events` streams what happens to
 * each event as it happens (`npm run events`).
 */
import type { CloudEvent } from 'cloudevents';
import type { Handler } from 'hono';
import pLimit from 'p-limit';
import { toCloudEvent } from '@avatar-pipeline/kit/cloudevents';
import { HttpError, describeError } from '@avatar-pipeline/kit/errors';
import { matchesFilters } from '@avatar-pipeline/kit/filters';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createMetrics, type Metrics } from '@avatar-pipeline/kit/metrics';
import { Lifecycle, createService, type AppEnv, type Service } from '@avatar-pipeline/kit/service';
import { defineTriggers, deliveryPolicies, type Destination, type RetryPolicy, type TriggerSpec } from '@avatar-pipeline/kit/topology';
import { Backoff } from './backoff.js';
import { createDispatcher, type UndeliverableEvent } from './dispatcher.js';
import { accepted, ingressTtl, type Event } from './events.js';
import { EventFeed, FEED_PATH } from './feed.js';
import { brokerMetrics, type IngestOrigin } from './metrics.js';

export type { UndeliverableEvent } from './dispatcher.js';
export { FEED_PATH, feedEntrySchema, type FeedEntry } from './feed.js';
export { backoffMs, isRetryable } from './delivery.js';
export { cachedTokens, TOKEN_REUSE_MS, type TokenCacheOptions } from './tokens.js';

export interface BrokerOptions {
  triggers: readonly TriggerSpec[];
  /**
   * Base URL of a service (a subscriber or dead-letter sink), asked at every attempt; the
   * destination's path is appended. Undefined (not running yet) fails the attempt like a refused
   * connection, so it is retried.
   */
  resolve: (destination: Destination) => string | undefined;
  logger: Logger;
  metrics?: Metrics;
  /**
   * Retries of the dead-letter sink when it does not take a dead letter at once (default: the
   * topology's `deliveryPolicies.deadLetters`, as the cluster's dead-letter broker redelivers to
   * profile). A dead letter that exhausts them is parked (logged and counted), never dropped.
   */
  deadLetterDelivery?: RetryPolicy;
  /**
   * Multiplies every backoff delay, the subscribers' and the dead-letter sink's; timeouts are not
   * scaled. Only for tests (e.g. 0.001: policies whose retries span minutes run in about a second);
   * `npm start` uses 1, real time.
   */
  backoffScale?: number;
  /** Delivery attempts in flight at once, over all triggers (default 32). */
  concurrency?: number;
  fetch?: typeof fetch;
  /** The broker's own URL: the knativeerrordest of an event whose reply the broker refused. */
  address?: string;
  /**
   * The bearer token of each attempt to `destination`, as Knative's `authentication-oidc` sends one
   * (an OIDC token whose audience names the subscriber); none when unset.
   */
  token?: (destination: Destination) => Promise<string>;
}

export interface Broker {
  /** The HTTP face: ingress, /_broker/undeliverable, /_broker/events, /healthz, /readyz, /metrics. */
  service: Service;
  /** Accepts an event as the ingress would; returns the names of the triggers it matched. */
  ingest(event: CloudEvent<unknown>): string[];
  /** Resolves once no delivery is pending (delivered, dead-lettered or parked). */
  idle(): Promise<void>;
  /** Stops accepting, lets attempts in flight finish (or time out) and parks whatever is left. */
  close(): Promise<void>;
}

export function createBroker(options: BrokerOptions): Broker {
  const { logger } = options;
  // Refuses triggers whose filters Knative would refuse or ignore, as the cluster would.
  const triggers = defineTriggers(options.triggers);
  const pending = new Lifecycle();
  const parked: UndeliverableEvent[] = [];
  const metrics = options.metrics ?? createMetrics('broker');
  const counters = brokerMetrics(metrics.registry, triggers.map((t) => t.name), {
    pending: () => pending.active,
    undeliverable: () => parked.length,
  });
  const backoff = new Backoff();
  const feed = new EventFeed();
  let closing = false;

  const deliver = createDispatcher({
    resolve: options.resolve,
    fetch: options.fetch ?? fetch,
    logger,
    metrics: counters,
    feed,
    deadLetterPolicy: options.deadLetterDelivery ?? deliveryPolicies.deadLetters,
    backoffScale: options.backoffScale ?? 1,
    limiter: pLimit(options.concurrency ?? 32),
    backoff,
    isClosing: () => closing,
    ingestReply: (reply) => accept(reply, 'reply'),
    park: (entry) => parked.push(entry),
    address: options.address ?? 'broker:ingress',
    ...(options.token ? { token: options.token } : {}),
  });

  function accept(event: Event, origin: IngestOrigin): string[] {
    if (closing) throw new HttpError(503, 'broker_closing', 'the broker is shutting down');
    try {
      event.validate();
    } catch (err) {
      counters.ingested.inc({ origin, outcome: 'invalid' });
      throw new HttpError(400, 'invalid_event', `not a valid CloudEvent: ${describeError(err)}`);
    }
    const acceptedAt = performance.now();
    const log = logger.child({ ceId: event.id, ceType: event.type, origin });
    const ttl = ingressTtl(event);
    if (ttl <= 0) {
      counters.ingested.inc({ origin, outcome: 'ttl_exceeded' });
      log.warn('event refused: its TTL (knativebrokerttl) is spent, it has looped through the broker too often');
      feed.report(event, { outcome: 'dropped', origin, reason: 'ttl_exceeded' });
      throw new HttpError(400, 'ttl_exceeded', 'the event has made too many hops through the broker');
    }
    const stored = accepted(event, ttl, new Date());
    const matched = triggers.filter((t) => matchesFilters(t.filters, stored));
    if (matched.length === 0) {
      counters.ingested.inc({ origin, outcome: 'dropped_no_trigger' });
      log.info('no trigger matches the event; dropped');
      feed.report(stored, { outcome: 'dropped', origin, reason: 'no_trigger' });
      return [];
    }
    counters.ingested.inc({ origin, outcome: 'routed' });
    log.debug({ triggers: matched.map((t) => t.name) }, 'event accepted');
    feed.report(stored, { outcome: 'accepted', origin, triggers: matched.map((t) => t.name) });
    for (const trigger of matched) {
      pending.enter();
      void deliver(stored, trigger, acceptedAt).finally(() => pending.leave());
    }
    return matched.map((t) => t.name);
  }

  const service = createService({ name: 'broker', logger, metrics });
  const ingress: Handler<AppEnv> = async (c) => {
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((value, name) => (headers[name] = value));
    let event: Event;
    try {
      event = toCloudEvent(headers, await c.req.text());
    } catch (err) {
      counters.ingested.inc({ origin: 'http', outcome: 'invalid' });
      throw new HttpError(400, 'invalid_event', `not a valid CloudEvent: ${describeError(err)}`);
    }
    accept(event, 'http');
    return c.body(null, 202);
  };
  service.app.post('/', ingress);
  service.app.post('/:namespace/:broker', ingress);
  service.app.get('/_broker/undeliverable', (c) => c.json({ count: parked.length, events: parked }));
  service.app.get(FEED_PATH, feed.handler);

  let closed: Promise<void> | undefined;
  return {
    service,
    ingest: (event) => accept(event, 'http'),
    idle: () => pending.idle(),
    close: () =>
      (closed ??= (async () => {
        closing = true;
        service.lifecycle.draining = true;
        backoff.cancelAll();
        await pending.idle();
        feed.close();
        logger.info({ undeliverable: parked.length }, 'broker closed');
      })()),
  };
}
