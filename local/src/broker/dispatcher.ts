/**
 * Delivers one accepted event to one trigger: subscriber attempts with the trigger's retries, the
 * reply back into the broker, then the dead-letter sink with its own retries (the topology's
 * `deadLetters` policy: minutes, as the cluster's dead-letter broker redelivers to profile, so a
 * dead letter does not depend on profile being up at that moment). What neither takes is parked in
 * memory (logged, counted), never dropped.
 */
import type { LimitFunction } from 'p-limit';
import { toBinaryMessage, type BinaryMessage } from '@avatar-pipeline/kit/cloudevents';
import { describeError } from '@avatar-pipeline/kit/errors';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { durationMs, type Destination, type RetryPolicy, type TriggerSpec } from '@avatar-pipeline/kit/topology';
import type { Backoff } from './backoff.js';
import { attempt, backoffMs, type AttemptResult } from './delivery.js';
import { TTL_EXTENSION, forSubscriber, ttlOf, withErrorExtensions, type DeliveryError, type Event } from './events.js';
import type { EventFeed } from './feed.js';
import type { BrokerMetrics } from './metrics.js';

export type ParkReason = 'dead_letter_failed' | 'broker_closed' | 'broker_error';

/** An event the broker could not hand to anyone, as listed at GET /_broker/undeliverable. */
export interface UndeliverableEvent {
  trigger: string;
  reason: ParkReason;
  at: string;
  /** The URL tried last (the dead-letter sink, or the subscriber if the broker closed first). */
  destination: string | undefined;
  attempts: number;
  status?: number | undefined;
  problem?: string | undefined;
  /** The event in structured JSON form, with its knativeerror* extensions if it was being dead-lettered. */
  event: Record<string, unknown>;
}

export interface DispatcherOptions {
  resolve: (destination: Destination) => string | undefined;
  fetch: typeof fetch;
  logger: Logger;
  metrics: BrokerMetrics;
  /** Hears every retry, delivery, dead letter and parked event (`npm run events`). */
  feed: EventFeed;
  /** Retries of the dead-letter sink, for every trigger. */
  deadLetterPolicy: RetryPolicy;
  backoffScale: number;
  /** Bounds the attempts in flight; the rest wait in arrival order. */
  limiter: LimitFunction;
  backoff: Backoff;
  isClosing: () => boolean;
  /** Offers a reply event to the broker; throws when the broker refuses it. */
  ingestReply: (reply: Event) => void;
  park: (entry: UndeliverableEvent) => void;
  /** knativeerrordest of an event whose reply the broker refused. */
  address: string;
  /** The bearer token of an attempt to a destination (see BrokerOptions.token). */
  token?: (destination: Destination) => Promise<string>;
}

type Role = 'subscriber' | 'dead-letter';

interface Sent {
  last: AttemptResult | undefined;
  attempts: number;
  /** The broker closed before this destination took the event. */
  interrupted: boolean;
  /** The URL tried (or `<service><path>` if it had no address). */
  target: string;
}

/** `acceptedAt`: when the broker took the event (performance.now()), for avatarpipeline_broker_event_processing_seconds. */
export type Deliver = (event: Event, trigger: TriggerSpec, acceptedAt?: number) => Promise<void>;

export function createDispatcher(o: DispatcherOptions): Deliver {
  /** Resolved at every attempt, so a service that comes up late is found on a retry. */
  const urlOf = (d: Destination) => {
    const base = o.resolve(d);
    return base === undefined ? undefined : `${base.replace(/\/+$/, '')}${d.path}`;
  };

  async function send(event: Event, d: Destination, message: BinaryMessage, trigger: TriggerSpec, role: Role, log: Logger, acceptedAt?: number): Promise<Sent> {
    const policy = role === 'subscriber' ? trigger.delivery : o.deadLetterPolicy;
    const timeoutMs = durationMs(policy.timeout);
    let last: AttemptResult | undefined;
    let url: string | undefined;
    for (let retry = 0; ; retry++) {
      const result = await o.limiter(async (): Promise<AttemptResult | undefined> => {
        // Closing: attempts in flight finish, no new one starts.
        if (o.isClosing()) return undefined;
        url = urlOf(d);
        if (url === undefined) {
          return { ok: false, status: undefined, retryable: true, problem: `no address for service ${d.service}`, error: undefined };
        }
        const signed = o.token ? { ...message, headers: { ...message.headers, authorization: `Bearer ${await o.token(d)}` } } : message;
        if (retry === 0 && acceptedAt !== undefined) o.metrics.processing.observe({ trigger: trigger.name }, (performance.now() - acceptedAt) / 1000);
        const end = role === 'subscriber' ? o.metrics.duration.startTimer({ trigger: trigger.name }) : undefined;
        try {
          return await attempt(url, signed, { fetch: o.fetch, timeoutMs, expectReply: role === 'subscriber' });
        } finally {
          end?.();
        }
      });
      const target = url ?? `${d.service}${d.path}`;
      if (!result) return { last, attempts: retry, interrupted: true, target };
      last = result;
      const attemptNo = retry + 1;
      if (result.ok) {
        log.debug({ attempt: attemptNo, status: result.status, destination: role }, `${role} accepted the event`);
        return { last, attempts: attemptNo, interrupted: false, target };
      }
      const final = !result.retryable || retry >= policy.retry;
      const waitMs = final ? undefined : backoffMs(policy, retry) * o.backoffScale;
      log[final ? 'warn' : 'info'](
        { attempt: attemptNo, status: result.status, problem: result.problem, destination: role, url: target, ...(waitMs === undefined ? {} : { retryInMs: waitMs }) },
        final ? `${role} attempt failed, no retry left` : `${role} attempt failed, will retry`,
      );
      if (waitMs === undefined) return { last, attempts: attemptNo, interrupted: false, target };
      o.metrics.deliveries.inc({ trigger: trigger.name, outcome: role === 'subscriber' ? 'retried' : 'dead_letter_retried' });
      const status = result.status === undefined ? {} : { status: result.status };
      o.feed.report(event, { outcome: 'retrying', trigger: trigger.name, destination: role, attempt: attemptNo, ...status, problem: result.problem, retryInMs: waitMs });
      if (!(await o.backoff.wait(waitMs))) return { last, attempts: attemptNo, interrupted: true, target };
    }
  }

  function park(event: Event, trigger: TriggerSpec, reason: ParkReason, sent: Sent | undefined, log: Logger, problem?: string) {
    const last = sent?.last;
    const destination = sent?.target;
    const failure = last && !last.ok ? last : undefined;
    const why = problem ?? failure?.problem;
    o.park({
      trigger: trigger.name,
      reason,
      at: new Date().toISOString(),
      destination,
      attempts: sent?.attempts ?? 0,
      status: failure?.status,
      problem: why,
      event: event.toJSON(),
    });
    o.metrics.deliveries.inc({ trigger: trigger.name, outcome: 'undeliverable' });
    o.feed.report(event, { outcome: 'undeliverable', trigger: trigger.name, reason, ...(why === undefined ? {} : { problem: why }) });
    log.error({ reason, destination, attempts: sent?.attempts ?? 0 }, 'event undeliverable: kept in memory, see GET /_broker/undeliverable');
  }

  /** `problem`: why the subscriber did not take the event. */
  async function deadLetter(event: Event, trigger: TriggerSpec, error: DeliveryError | undefined, problem: string, log: Logger): Promise<void> {
    const failed = withErrorExtensions(event, error);
    const sent = await send(failed, trigger.delivery.deadLetter, toBinaryMessage(failed), trigger, 'dead-letter', log);
    // The sink's answer is never a reply: Knative discards it.
    if (sent.last?.ok) {
      o.metrics.deliveries.inc({ trigger: trigger.name, outcome: 'dead_lettered' });
      log.warn({ errorCode: error?.code, deadLetter: sent.target }, 'event dead-lettered');
      o.feed.report(event, { outcome: 'dead_lettered', trigger: trigger.name, problem, ...(error ? { errorCode: error.code } : {}) });
      return;
    }
    park(failed, trigger, sent.interrupted ? 'broker_closed' : 'dead_letter_failed', sent, log);
  }

  async function deliver(event: Event, trigger: TriggerSpec, log: Logger, acceptedAt: number | undefined): Promise<void> {
    const message = toBinaryMessage(forSubscriber(event));
    // Brokers announce that they take reply events (Knative sends this to every subscriber).
    message.headers['prefer'] = 'reply';
    const sent = await send(event, trigger.subscriber, message, trigger, 'subscriber', log, acceptedAt);
    const last = sent.last;
    if (sent.interrupted || !last) return park(event, trigger, 'broker_closed', sent, log);
    if (!last.ok) return deadLetter(event, trigger, last.error, last.problem, log);
    if (last.reply) {
      // The reply keeps the hop count of the event it answers; the broker takes one more off.
      const reply = last.reply.cloneWith({ [TTL_EXTENSION]: ttlOf(event) });
      try {
        o.ingestReply(reply);
      } catch (err) {
        if (o.isClosing()) {
          park(reply, trigger, 'broker_closed', undefined, log, 'reply arrived while the broker was closing');
        } else {
          // Knative: the broker ingress answers 400, so the original goes to the dead-letter sink.
          const problem = describeError(err);
          log.warn({ replyId: reply.id, replyType: reply.type, problem }, 'broker refused the reply');
          return deadLetter(event, trigger, { dest: o.address, code: 400, data: new Uint8Array() }, `the broker refused its reply: ${problem}`, log);
        }
      }
    }
    o.metrics.deliveries.inc({ trigger: trigger.name, outcome: 'delivered' });
    log.info({ attempts: sent.attempts, status: last.status, ...(last.reply ? { replyId: last.reply.id, replyType: last.reply.type } : {}) }, 'event delivered');
    const replied = last.reply ? { reply: { id: last.reply.id, type: last.reply.type } } : {};
    o.feed.report(event, { outcome: 'delivered', trigger: trigger.name, status: last.status, attempts: sent.attempts, ...replied });
  }

  return async (event, trigger, acceptedAt) => {
    const log = o.logger.child({ ceId: event.id, ceType: event.type, trigger: trigger.name });
    try {
      await deliver(event, trigger, log, acceptedAt);
    } catch (err) {
      // A bug, or a resolver that throws: keep the event rather than lose it.
      log.error({ err }, 'delivery failed unexpectedly');
      park(event, trigger, 'broker_error', undefined, log, describeError(err));
    }
  };
}
