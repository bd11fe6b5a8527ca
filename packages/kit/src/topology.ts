/**
 * The event topology: the single source of truth for which service consumes
 * which event type, with which filters and delivery policy. The cdk8s app turns
 * it into Knative Triggers; the local broker builds its triggers from it.
 */
import { filterProblems, type Filter } from './filters.js';

export const S3_OBJECT_CREATED_PREFIX = 'com.amazonaws.s3.ObjectCreated:';

export const EventType = {
  approved: 'avatarpipeline.avatar.approved',
  rejected: 'avatarpipeline.avatar.rejected',
  thumbnailed: 'avatarpipeline.avatar.thumbnailed',
  ready: 'avatarpipeline.avatar.ready',
  failed: 'avatarpipeline.avatar.failed',
  expired: 'avatarpipeline.avatar.expired',
  reviewRequested: 'avatarpipeline.avatar.review_requested',
  playerErased: 'avatarpipeline.player.erased',
} as const;
export type DomainEventType = (typeof EventType)[keyof typeof EventType];

/** Upload notifications only ever concern keys under this prefix. */
export const UPLOAD_PREFIX = 'uploads/';

export const serviceNames = ['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push'] as const;
export type ServiceName = (typeof serviceNames)[number];

export interface Destination {
  service: ServiceName;
  path: string;
}

/** The retry part of Knative's `spec.delivery` (eventing.knative.dev/v1 DeliverySpec). */
export interface RetryPolicy {
  /** Retries after the first attempt. */
  retry: number;
  backoffPolicy: 'exponential' | 'linear';
  /** ISO 8601 duration, e.g. PT2S. Wait before retry n (0 for the first): exponential delay * 2^n, linear delay * n. */
  backoffDelay: string;
  /**
   * ISO 8601 duration: per-attempt timeout. Knative's `delivery-timeout` feature, beta and
   * `enabled` in Eventing 1.21's default config-features, so no flag change is needed (unlike
   * `retryAfterMax`, alpha `delivery-retryafter`, disabled: not used). At most the subscriber's
   * Knative `timeoutSeconds` (k8s-tests check that).
   */
  timeout: string;
}

/** Mirrors Knative's `spec.delivery` (eventing.knative.dev/v1 DeliverySpec). */
export interface DeliveryPolicy extends RetryPolicy {
  deadLetter: Destination;
}

export interface TriggerSpec {
  name: string;
  /** Knative `spec.filters`: every entry must match. */
  filters: readonly Filter[];
  subscriber: Destination;
  delivery: DeliveryPolicy;
}

/**
 * Events that exhaust their retries end here: profile turns a processing-stage
 * event into `avatarpipeline.avatar.failed` for its upload, and only counts a
 * notification event (ready/rejected/failed/expired/review_requested) that push could not take.
 */
export const deadLetterSink: Destination = { service: 'profile', path: '/dead-letter' };

/**
 * The image stages (moderate, thumbnail). An attempt may meet a scaled-to-zero pod: scheduling,
 * start-up and (moderate) loading the model take tens of seconds before the image work, so each
 * attempt gets 90 s, under those services' 120 s Knative `timeoutSeconds`. Retries start at 2 s
 * (a blip) and double to about 4 min, so a dependency that is down for minutes (a rollout, a node
 * being added, a throttled table) is ridden out: see `deliveryBudget` and the table in docs/events.md.
 */
const processing: DeliveryPolicy = {
  retry: 8,
  backoffPolicy: 'exponential',
  backoffDelay: 'PT2S',
  timeout: 'PT90S',
  deadLetter: deadLetterSink,
};

/**
 * Processing stages, whose failure fails the upload: the image stages (S3, approved) and
 * publishing (thumbnailed, to profile: table writes only, 45 s under its 60 s `timeoutSeconds`).
 * Notifications (ready, rejected, failed, expired, review_requested, to push: its own budget per event is PUSH_TIMEOUT_MS,
 * 20 s) retry longer. `deadLetters` is how dead letters reach profile's `/dead-letter` when it does
 * not take them at once (in the cluster: the dead-letter broker's trigger; locally: the broker's
 * dead-letter retries), longest of all, since a lost dead letter leaves its upload unsettled.
 * `processing` is also the Broker's default for triggers that set none.
 */
export const deliveryPolicies = {
  processing,
  publishing: { ...processing, timeout: 'PT45S' },
  notification: { ...processing, retry: 9, timeout: 'PT45S' },
  deadLetters: { retry: 10, backoffPolicy: 'exponential', backoffDelay: 'PT2S', timeout: 'PT45S' },
} as const satisfies Readonly<Record<string, RetryPolicy>>;

/**
 * The triggers, checked as Knative checks them: throws on a filter the cluster would refuse or
 * ignore, so neither the local broker nor the charts can carry one.
 */
export function defineTriggers(specs: readonly TriggerSpec[]): readonly TriggerSpec[] {
  const problems = specs.flatMap((t) => filterProblems(t.filters).map((problem) => `Trigger ${t.name}: ${problem}`));
  if (problems.length > 0) throw new Error(`invalid trigger filters:\n${problems.join('\n')}`);
  return specs;
}

export const triggers: readonly TriggerSpec[] = defineTriggers([
  {
    name: 'moderate-uploads',
    filters: [{ prefix: { type: S3_OBJECT_CREATED_PREFIX } }, { prefix: { subject: UPLOAD_PREFIX } }],
    subscriber: { service: 'moderate', path: '/events' },
    delivery: deliveryPolicies.processing,
  },
  {
    name: 'thumbnail-approved',
    filters: [{ exact: { type: EventType.approved } }],
    subscriber: { service: 'thumbnail', path: '/events' },
    delivery: deliveryPolicies.processing,
  },
  {
    name: 'profile-thumbnailed',
    filters: [{ exact: { type: EventType.thumbnailed } }],
    subscriber: { service: 'profile', path: '/events' },
    delivery: deliveryPolicies.publishing,
  },
  ...([EventType.ready, EventType.rejected, EventType.failed, EventType.expired, EventType.reviewRequested] as const).map(
    (type): TriggerSpec => ({
      // push-ready, ..., push-review-requested (Kubernetes names take no `_`).
      name: `push-${type.slice(type.lastIndexOf('.') + 1).replaceAll('_', '-')}`,
      filters: [{ exact: { type } }],
      subscriber: { service: 'push', path: '/events' },
      delivery: deliveryPolicies.notification,
    }),
  ),
]);

/**
 * Types put on the broker for consumers outside the system (a game backend's own Trigger on the
 * Broker): no trigger of ours takes them, and the check that every emitted type has a consumer
 * allows them.
 */
export const externalEvents: readonly DomainEventType[] = [EventType.playerErased];

/**
 * What each service puts on the broker (as replies, or as a source). Checked
 * against `triggers`: every emitted type must have a consumer (or be one of `externalEvents`).
 */
export const emits: Readonly<Record<ServiceName, readonly string[]>> = {
  presign: [],
  's3-source': [`${S3_OBJECT_CREATED_PREFIX}*`],
  moderate: [EventType.approved, EventType.rejected, EventType.reviewRequested],
  thumbnail: [EventType.thumbnailed],
  // expired and some failed come from the reconciler, a job of the profile package (posting to K_SINK);
  // approved and rejected from a moderator's decision on a review, player.erased from an erasure.
  profile: [EventType.ready, EventType.failed, EventType.expired, EventType.approved, EventType.rejected, EventType.playerErased],
  subscribe: [],
  push: [],
};

/**
 * Services that originate events rather than reply to the one they handle (s3-source from S3
 * notifications, profile the `failed` of a dead letter, whose reply Knative drops, and its
 * reconciler's `expired` and `failed`): they post to K_SINK, so they are bound to the broker (a
 * SinkBinding in the cluster; the reconciler's CronJob has one of its own).
 */
export const sinkBound: ReadonlySet<ServiceName> = new Set(['s3-source', 'profile']);

/** Services with event endpoints (Trigger subscribers, dead-letter sinks): they check each delivery's OIDC token. */
export const eventConsumers: ReadonlySet<ServiceName> = new Set([
  ...triggers.flatMap((t) => [t.subscriber.service, t.delivery.deadLetter.service]),
  // The Broker's default dead-letter sink.
  deliveryPolicies.processing.deadLetter.service,
]);

/**
 * The OIDC audience of deliveries to a service, in Knative's format for an addressable
 * (`<group>/<kind>/<namespace>/<name>`, eventing pkg/auth GetAudience). Serving sets no audience on
 * a Knative Service, so each Trigger names it on its subscriber and dead-letter sink, and without
 * one Knative sends no token at all.
 */
export function eventAudience(namespace: string, service: ServiceName): string {
  return `serving.knative.dev/service/${namespace}/${service}`.toLowerCase();
}

/** Services that expose a public HTTP API (the rest are cluster-local). */
export const publicServices = ['presign', 'profile', 'subscribe'] as const satisfies readonly ServiceName[];
export type PublicService = (typeof publicServices)[number];

/** Parse the ISO 8601 durations used in delivery policies (PnDTnHnMn.nS) into milliseconds. */
export function durationMs(iso: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(iso);
  if (!m || iso === 'P' || iso.endsWith('T')) throw new Error(`not an ISO 8601 duration: ${iso}`);
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Number(s ?? 0) * 1000;
}

/** The wait before retry `retry` (0 for the first), as Knative computes it (no cap, Retry-After ignored). */
export function retryDelayMs(policy: RetryPolicy, retry: number): number {
  const delay = durationMs(policy.backoffDelay);
  return policy.backoffPolicy === 'exponential' ? delay * 2 ** retry : delay * retry;
}

/** What a retry policy costs in time, for one event and one destination. */
export interface DeliveryBudget {
  /** Attempts in all: the first and every retry. */
  attempts: number;
  /** The wait before each retry, in ms. */
  delaysMs: readonly number[];
  /** The sum of the waits: how long the retries span when every attempt fails at once (a 5xx, a refused connection). */
  backoffMs: number;
  /** The per-attempt timeout, in ms. */
  timeoutMs: number;
  /** The longest an event can take before it is given up (dead-lettered): every wait, plus every attempt running into its timeout. */
  worstCaseMs: number;
}

/** The time budget of a retry policy (pure: the delivery table of docs/events.md is checked against it). */
export function deliveryBudget(policy: RetryPolicy): DeliveryBudget {
  if (!Number.isInteger(policy.retry) || policy.retry < 0) throw new RangeError(`retry must be a non-negative integer, got ${policy.retry}`);
  const timeoutMs = durationMs(policy.timeout);
  if (timeoutMs <= 0) throw new RangeError(`timeout must be positive, got ${policy.timeout}`);
  const delaysMs = Array.from({ length: policy.retry }, (_, n) => retryDelayMs(policy, n));
  const backoffMs = delaysMs.reduce((sum, ms) => sum + ms, 0);
  const attempts = policy.retry + 1;
  return { attempts, delaysMs, backoffMs, timeoutMs, worstCaseMs: backoffMs + attempts * timeoutMs };
}

const pipelineTypes: ReadonlySet<string> = new Set(Object.values(EventType));

/**
 * A bounded metric label for an event type: pipeline types as they are, every S3 object-created
 * variant as one label, anything else `other` (so a catch-all route cannot grow label sets).
 */
export function eventTypeLabel(type: string): string {
  if (type.startsWith(S3_OBJECT_CREATED_PREFIX)) return `${S3_OBJECT_CREATED_PREFIX}*`;
  return pipelineTypes.has(type) ? type : 'other';
}

/** Every value `eventTypeLabel` gives. */
export const eventTypeLabels: readonly string[] = [`${S3_OBJECT_CREATED_PREFIX}*`, ...pipelineTypes, 'other'];

/** The labels of the types a route pattern matches (an exact type, or a prefix ending in `*`, as `on` takes them). */
export function eventTypeLabelsOf(pattern: string): string[] {
  if (!pattern.endsWith('*')) return [eventTypeLabel(pattern)];
  const prefix = pattern.slice(0, -1);
  return eventTypeLabels.filter((label) => (label === 'other' ? prefix === '' : label.startsWith(prefix)));
}

/** The pipeline's own stages: every trigger but the notifications to push. */
const processingTriggers = () => triggers.filter((t) => t.delivery !== deliveryPolicies.notification);

/**
 * The longest the pipeline itself can take to end an upload once processing began: every stage
 * (moderation, thumbnails, publishing) in its worst case one after the other, and then the dead
 * letter of the last one reaching profile in its own worst case (which ends the upload `failed`).
 * The reconciler's processing timeout must exceed it, or it would fail uploads the pipeline may
 * still finish (or fail with a better reason).
 */
export function processingWorstCaseMs(): number {
  const stages = processingTriggers().reduce((sum, t) => sum + deliveryBudget(t.delivery).worstCaseMs, 0);
  return stages + deliveryBudget(deliveryPolicies.deadLetters).worstCaseMs;
}

/**
 * The longest an upload's S3 event can be retried before moderate takes it (and marks the upload
 * `processing`): the reconciler's grace after a ticket's expiry should exceed it.
 */
export function uploadDeliveryWorstCaseMs(): number {
  const moderation = triggers.find((t) => t.subscriber.service === 'moderate');
  return moderation ? deliveryBudget(moderation.delivery).worstCaseMs : 0;
}
