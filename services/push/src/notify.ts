/**
 * ready / rejected / failed / expired / review_requested -> one Web Push message to every device of the player.
 *
 * Each device ends in one outcome (see metrics.ts). The event is answered 202 once every device is
 * settled (sent, pruned, refused, rejected, or notified before), and 500 when any device failed
 * transiently or is still claimed by another delivery: the broker then redelivers and only those
 * devices are tried again.
 *
 * Once a push service has answered, the device is settled whatever happens to the record of it:
 * the claim's `done` is retried within the event's time budget, and if the table still refuses it
 * the outcome is kept in this pod's memory (a redelivery here skips the device) instead of failing
 * the event, which would make a redelivery send the message again once the claim's lease ran out.
 */
import { PermanentEventError, on, type EventRoute, type ReceivedEvent } from '@avatar-pipeline/kit/cloudevents';
import { expiredSchema, failedSchema, readySchema, rejectedSchema, reviewRequestedSchema } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { EventType } from '@avatar-pipeline/kit/topology';
import { checkPushEndpoint, type PushEndpointPolicy, type StoredSubscription, type SubscriptionStore } from '@avatar-pipeline/webpush';
import type { DeliveryClaims } from './claims.js';
import { statusClass, type Outcome, type PushMetrics } from './metrics.js';
import { encodeNotification, notificationFor, type OutcomeEvent } from './payload.js';
import type { PushMessage, PushSender, SendResult, Urgency } from './sender.js';
import type { TopicFor } from './topic.js';

export interface NotifyDeps {
  subscriptions: SubscriptionStore;
  claims: DeliveryClaims;
  sender: Pick<PushSender, 'send'>;
  policy: PushEndpointPolicy;
  metrics: PushMetrics;
  topicFor: TopicFor;
  ttlSeconds: number;
  /** Time budget of one event, all devices and retries included. */
  timeoutMs: number;
  now?: () => number;
}

/**
 * The result is what the player waits for after an upload: ready and rejected go out at once.
 * A failure only arrives after the broker's retries ran out, minutes later, and asks nothing of
 * the player right now, so it may wait for the device's next wake-up.
 */
const urgencyFor: Readonly<Record<OutcomeEvent['type'], Urgency>> = {
  [EventType.ready]: 'high',
  [EventType.rejected]: 'high',
  [EventType.failed]: 'normal',
  // An abandoned upload, ended an hour or more later: nothing is urgent about it.
  [EventType.expired]: 'normal',
  // Sent while the player waits for the outcome, like ready and rejected; the decision follows with the same topic.
  [EventType.reviewRequested]: 'high',
};

/** Devices whose notification a redelivery has to retry. */
class DevicesPending extends Error {
  constructor(count: number) {
    super(`${count} device(s) not notified yet; the broker will redeliver`);
    this.name = 'DevicesPending';
  }
}

/** Settled devices whose claim could not be marked done, newest last: bounded, oldest dropped first. */
class UnrecordedOutcomes {
  private readonly keys = new Set<string>();
  constructor(private readonly max = 10_000) {}
  has(notificationId: string, hash: string): boolean {
    return this.keys.has(`${notificationId}|${hash}`);
  }
  add(notificationId: string, hash: string): void {
    this.keys.add(`${notificationId}|${hash}`);
    if (this.keys.size > this.max) this.keys.delete(this.keys.values().next().value!);
  }
  delete(notificationId: string, hash: string): void {
    this.keys.delete(`${notificationId}|${hash}`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Retries of a claim's `done` (50 ms doubling: 1.55 s in all), within the event's deadline too. */
const RECORD_RETRIES = 5;

export function notificationRoutes(deps: NotifyDeps): EventRoute<any>[] {
  const { subscriptions, claims, sender, policy, metrics } = deps;
  const now = deps.now ?? Date.now;
  const unrecorded = new UnrecordedOutcomes();

  /** Marks the device's claim done, retrying until the event's deadline; never throws. */
  async function record(notificationId: string, hash: string, token: string, outcome: Outcome, deadline: number, log: Logger): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await claims.complete(notificationId, hash, token, outcome);
        unrecorded.delete(notificationId, hash);
        return;
      } catch (err) {
        const wait = 50 * 2 ** attempt;
        if (attempt >= RECORD_RETRIES || now() + wait >= deadline) {
          unrecorded.add(notificationId, hash);
          metrics.unrecorded.inc();
          log.error({ subscription: hash, outcome, err }, 'device settled but its claim could not be marked done; kept in memory');
          return;
        }
        await sleep(wait);
      }
    }
  }

  const count = (outcome: Outcome, status?: number) => metrics.notifications.inc({ outcome, status_class: statusClass(status) });

  async function deliver(subscription: StoredSubscription, notificationId: string, message: PushMessage, log: Logger): Promise<Outcome> {
    const settle = (token: string, outcome: Outcome) => record(notificationId, subscription.hash, token, outcome, message.deadline, log);
    const { playerId, hash } = subscription;
    // The policy may have tightened since the subscription was stored.
    const check = checkPushEndpoint(subscription.endpoint, policy);
    if (!check.ok) {
      await subscriptions.removeByHash(playerId, hash);
      metrics.pruned.inc({ reason: 'endpoint_not_allowed' });
      log.warn({ subscription: hash, code: check.code, problem: check.message }, 'stored endpoint no longer allowed; subscription deleted');
      count('refused_endpoint');
      return 'refused_endpoint';
    }

    if (unrecorded.has(notificationId, hash)) {
      count('skipped_duplicate');
      return 'skipped_duplicate';
    }
    const claim = await claims.claim(notificationId, hash);
    if (claim.kind === 'done') {
      count('skipped_duplicate');
      return 'skipped_duplicate';
    }
    if (claim.kind === 'in_flight') {
      log.info({ subscription: hash }, 'another delivery of this event is sending to the device');
      count('deferred');
      return 'deferred';
    }

    let result: SendResult;
    try {
      result = await sender.send(subscription, message);
    } catch (err) {
      await claims.release(notificationId, hash, claim.token);
      throw err;
    }
    const status = 'status' in result ? result.status : undefined;
    const fields = { subscription: hash, status, attempts: result.attempts, ...('detail' in result ? { detail: result.detail } : {}) };
    switch (result.outcome) {
      case 'sent':
        await settle(claim.token, 'sent');
        count('sent', status);
        return 'sent';
      case 'gone':
        await subscriptions.removeByHash(playerId, hash);
        metrics.pruned.inc({ reason: 'gone' });
        await settle(claim.token, 'pruned');
        log.info(fields, 'subscription gone; deleted');
        count('pruned', status);
        return 'pruned';
      case 'rejected':
        await settle(claim.token, 'rejected');
        log.warn(fields, 'push service refused the message');
        count('rejected', status);
        return 'rejected';
      case 'refused':
        await settle(claim.token, 'refused_endpoint');
        log.warn(fields, 'push service address refused');
        count('refused_endpoint');
        return 'refused_endpoint';
      case 'failed':
        await claims.release(notificationId, hash, claim.token);
        log.warn(fields, 'push failed after retries');
        count('failed', status);
        return 'failed';
    }
  }

  async function handle(event: OutcomeEvent, received: ReceivedEvent<unknown>, log: Logger): Promise<undefined> {
    const { playerId, uploadId } = event.data;
    const notification = notificationFor(event);
    let payload: string;
    try {
      payload = encodeNotification(notification);
    } catch (err) {
      throw new PermanentEventError('payload_too_large', (err as Error).message);
    }
    const devices = await subscriptions.list(playerId);
    const message: PushMessage = {
      payload,
      ttlSeconds: deps.ttlSeconds,
      urgency: urgencyFor[event.type],
      topic: deps.topicFor(playerId),
      deadline: now() + deps.timeoutMs,
    };
    // The outcome's own name, the same as the event's deterministic id.
    const notificationId = `${uploadId}.${notification.status}`;
    const settled = await Promise.allSettled(devices.map((device) => deliver(device, notificationId, message, log)));

    const outcomes: Partial<Record<Outcome, number>> = {};
    for (const s of settled) if (s.status === 'fulfilled') outcomes[s.value] = (outcomes[s.value] ?? 0) + 1;
    log.info({ playerId, uploadId, eventId: received.id, devices: devices.length, outcomes }, 'notifications settled');

    const error = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (error) throw error.reason;
    const pending = (outcomes.failed ?? 0) + (outcomes.deferred ?? 0);
    if (pending > 0) throw new DevicesPending(pending);
    return undefined;
  }

  return [
    on(EventType.ready, readySchema, (e, { log }) => handle({ type: EventType.ready, data: e.data }, e, log)),
    on(EventType.rejected, rejectedSchema, (e, { log }) => handle({ type: EventType.rejected, data: e.data }, e, log)),
    on(EventType.failed, failedSchema, (e, { log }) => handle({ type: EventType.failed, data: e.data }, e, log)),
    on(EventType.expired, expiredSchema, (e, { log }) => handle({ type: EventType.expired, data: e.data }, e, log)),
    on(EventType.reviewRequested, reviewRequestedSchema, (e, { log }) => handle({ type: EventType.reviewRequested, data: e.data }, e, log)),
  ];
}
