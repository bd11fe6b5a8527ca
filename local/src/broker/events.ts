/**
 * CloudEvent handling as Knative's multi-tenant broker does it: the hop counter
 * (`knativebrokerttl`), the arrival time, the `knativeerror*` extensions of dead-lettered events,
 * and telling a reply event apart from a plain response body (binary-mode serialization is the
 * kit's `toBinaryMessage`).
 */
import { CloudEvent, type CloudEventV1 } from 'cloudevents';
import { toCloudEvent } from '@avatar-pipeline/kit/cloudevents';
import { describeError } from '@avatar-pipeline/kit/errors';

export type Event = CloudEvent<unknown>;

export const TTL_EXTENSION = 'knativebrokerttl';
export const ARRIVAL_EXTENSION = 'knativearrivaltime';
/** Hops a fresh event may make (Knative's default broker TTL). */
export const DEFAULT_TTL = 255;
/** Knative cuts the base64 `knativeerrordata` to this many characters. */
export const ERROR_DATA_MAX_LENGTH = 1024;

/** What Knative records about the last failed attempt of a dead-lettered event. */
export interface DeliveryError {
  /** knativeerrordest: the URL that failed. */
  dest: string;
  /** knativeerrorcode: its HTTP status (500 when it could not be reached). */
  code: number;
  /** knativeerrordata, before base64: the response body. */
  data: Uint8Array;
}

/**
 * The TTL an event carries once accepted: a fresh event starts at 255, one that already has a TTL
 * (a reply, or an event looping back) loses a hop. Zero means the broker refuses it.
 */
export function ingressTtl(event: Event): number {
  const raw = event[TTL_EXTENSION];
  const ttl = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : undefined;
  return ttl === undefined || !Number.isInteger(ttl) ? DEFAULT_TTL : Math.max(ttl - 1, 0);
}

export function ttlOf(event: Event): number {
  return Number(event[TTL_EXTENSION]);
}

/** The event as the broker stores it: Knative stamps the arrival time and the remaining hops. */
export function accepted(event: Event, ttl: number, now: Date): Event {
  return event.cloneWith({ [TTL_EXTENSION]: ttl, [ARRIVAL_EXTENSION]: now.toISOString() });
}

/** Subscribers never see the hop counter: Knative's filter removes it before delivery. */
export function forSubscriber(event: Event): Event {
  const { [TTL_EXTENSION]: _ttl, ...attributes } = event.toJSON();
  return new CloudEvent<unknown>(attributes as Partial<CloudEventV1<unknown>>);
}

/** The event as the dead-letter sink gets it. Without error details (a timeout) Knative adds none. */
export function withErrorExtensions(event: Event, error: DeliveryError | undefined): Event {
  if (!error) return event;
  const data = Buffer.from(error.data).toString('base64').slice(0, ERROR_DATA_MAX_LENGTH);
  return event.cloneWith({ knativeerrordest: error.dest, knativeerrorcode: error.code, ...(data ? { knativeerrordata: data } : {}) });
}

export type ReplyBody = { kind: 'none' } | { kind: 'event'; event: Event } | { kind: 'invalid'; problem: string };

/**
 * Reads a 2xx response the way Knative's broker filter does: binary (`ce-specversion`) or
 * structured (`application/cloudevents+json`) is a reply event; an empty body is plain success;
 * anything else, or a malformed event, is a failed delivery.
 */
export function readReply(headers: Headers, body: string): ReplyBody {
  const structured = /^application\/cloudevents(-batch)?\+json/i.test(headers.get('content-type') ?? '');
  if (!structured && !headers.has('ce-specversion')) {
    return body.length === 0 ? { kind: 'none' } : { kind: 'invalid', problem: 'non-empty response that is not a CloudEvent' };
  }
  const record: Record<string, string> = {};
  headers.forEach((value, name) => (record[name] = value));
  try {
    return { kind: 'event', event: toCloudEvent(record, body) };
  } catch (err) {
    return { kind: 'invalid', problem: `malformed reply event: ${describeError(err)}` };
  }
}
