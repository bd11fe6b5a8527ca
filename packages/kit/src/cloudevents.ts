/**
 * Receiving and replying with CloudEvents over HTTP (binary and structured mode), using the
 * `cloudevents` package. Replies go back in the HTTP response: the Knative reply pattern, so
 * services never need the broker's address.
 *
 * Status codes follow Knative's retry rules: 2xx is success, 5xx is retried, and other 4xx
 * (a malformed or unexpected event) goes straight to the dead-letter sink.
 */
import type { CloudEvent } from 'cloudevents';
import type { Context, Handler } from 'hono';
import type { z } from 'zod';
import { readTokenFile, verifyBearer } from './auth.js';
import { HttpError, describeZodError, errorBody } from './errors.js';
import type { Logger } from './logger.js';
import { eventOutcomes, labelCombinations, zeroed } from './metrics.js';
import { cloudEventsSdk } from './sdk.js';
import type { AppEnv, Service } from './service.js';
import { eventTypeLabel, eventTypeLabelsOf } from './topology.js';
import { traceLogFields, tracing, type TraceContext } from './tracing.js';

export interface ReceivedEvent<T> {
  id: string;
  source: string;
  type: string;
  subject: string | undefined;
  time: string | undefined;
  data: T;
  /** W3C trace context carried by the event (Distributed Tracing extension), if any. */
  traceparent: string | undefined;
  tracestate: string | undefined;
  extensions: Readonly<Record<string, unknown>>;
}

export interface OutgoingEvent {
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  data: unknown;
  /**
   * The trace this event continues. With tracing on, the event carries its own span's context
   * instead (a child of this one): see `sendEvent` and `eventEndpoint`.
   */
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

export interface EventContext {
  log: Logger;
}

/** A failure that retrying cannot fix: the event goes to the dead-letter sink. */
export class PermanentEventError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PermanentEventError';
  }
}

export interface EventRoute<T> {
  /** The type as declared (`on`): exact, or a prefix ending in `*`. */
  type: string;
  matches(type: string): boolean;
  schema: z.ZodType<T>;
  handle(event: ReceivedEvent<T>, ctx: EventContext): Promise<OutgoingEvent | undefined>;
}

/** Declares how to handle one event type (a string ending in `*` matches by prefix). */
export function on<T>(
  type: string,
  schema: z.ZodType<T>,
  handle: (event: ReceivedEvent<T>, ctx: EventContext) => Promise<OutgoingEvent | undefined>,
): EventRoute<T> {
  const matches = type.endsWith('*') ? (t: string) => t.startsWith(type.slice(0, -1)) : (t: string) => t === type;
  return { type, matches, schema, handle };
}

/** Parses a request body (binary or structured mode) into one valid CloudEvent. */
export function toCloudEvent(headers: Record<string, string>, body: string): CloudEvent<unknown> {
  const { HTTP, ValidationError } = cloudEventsSdk();
  const parsed = HTTP.toEvent({ headers, body });
  if (Array.isArray(parsed)) throw new ValidationError('batched events are not accepted');
  const ce = parsed as CloudEvent<unknown>;
  // The SDK parses leniently: a missing type or source only shows up on validation, and a
  // structured event without an id gets a random one (which would defeat deduplication).
  ce.validate();
  if (isStructured(headers) && !hasOwnId(body)) throw new ValidationError('the event has no id');
  return ce;
}

function isStructured(headers: Record<string, string>): boolean {
  const type = Object.entries(headers).find(([name]) => name.toLowerCase() === 'content-type')?.[1] ?? '';
  return type.startsWith('application/cloudevents');
}

function hasOwnId(body: string): boolean {
  const id = (JSON.parse(body) as { id?: unknown }).id;
  return typeof id === 'string' && id !== '';
}

export function buildCloudEvent(event: OutgoingEvent): CloudEvent<unknown> {
  const { CloudEvent } = cloudEventsSdk();
  return new CloudEvent<unknown>({
    specversion: '1.0',
    id: event.id,
    source: event.source,
    type: event.type,
    ...(event.subject !== undefined ? { subject: event.subject } : {}),
    time: event.time ?? new Date().toISOString(),
    datacontenttype: 'application/json',
    data: event.data,
    ...(event.traceparent !== undefined ? { traceparent: event.traceparent } : {}),
    ...(event.traceparent !== undefined && event.tracestate !== undefined ? { tracestate: event.tracestate } : {}),
  });
}

/** An event in binary content mode, ready for `fetch`. */
export interface BinaryMessage {
  headers: Record<string, string>;
  /** The data: JSON as text, binary data as is, null without data. */
  body: string | Uint8Array | null;
}

/** Binary content mode: the attributes (extensions included) as `ce-*` headers, the data as the body. */
export function toBinaryMessage(event: CloudEvent<unknown>): BinaryMessage {
  const message = cloudEventsSdk().HTTP.binary(event);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) if (value !== undefined) headers[name] = String(value);
  const body = message.body;
  return {
    headers,
    body: body === undefined || body === null ? null : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  };
}

/** Serializes an event in binary mode: ce-* headers plus the JSON data as body. */
export function toBinary(event: OutgoingEvent): { headers: Record<string, string>; body: string } {
  const { headers, body } = toBinaryMessage(buildCloudEvent(event));
  // The data is JSON, so the body is text (none without data).
  return { headers, body: typeof body === 'string' ? body : body === null ? '' : new TextDecoder().decode(body) };
}

export interface SinkOptions {
  fetch?: typeof fetch | undefined;
  /** Sent as the bearer token (K_SINK_OIDC_TOKEN_FILE: what a SinkBinding mounts when the broker requires OIDC). */
  tokenFile?: string | undefined;
}

/**
 * Posts an event to a sink (K_SINK, a broker) in binary mode; throws unless it answers 2xx. With
 * tracing on, in a producer span (continuing `event.traceparent` if given) that the event carries.
 */
export async function sendEvent(sink: string, event: OutgoingEvent, options: SinkOptions = {}): Promise<void> {
  const span = tracing()?.startSpan({ kind: 'producer', name: `send ${eventTypeLabel(event.type)}`, parent: traceOfOutgoing(event), attributes: eventAttributes(event) });
  if (!span) return post(sink, event, options);
  try {
    await span.run(() => post(sink, { ...event, ...span.context }, options));
    span.end();
  } catch (err) {
    span.end((err as Error).message);
    throw err;
  }
}

async function post(sink: string, event: OutgoingEvent, options: SinkOptions): Promise<void> {
  const { headers, body } = toBinary(event);
  if (options.tokenFile) headers['authorization'] = `Bearer ${await readTokenFile(options.tokenFile)}`;
  const res = await (options.fetch ?? fetch)(sink, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`sink ${sink} answered ${res.status}`);
}

/** Trace context: the event's extension, else the HTTP header Knative propagates. */
function traceOf(ce: CloudEvent<unknown>, c: Context): TraceContext | undefined {
  const [traceparent, tracestate] = [ce['traceparent'], ce['tracestate']];
  if (typeof traceparent === 'string') return { traceparent, tracestate: typeof tracestate === 'string' ? tracestate : undefined };
  const header = c.req.header('traceparent');
  return header ? { traceparent: header, tracestate: c.req.header('tracestate') } : undefined;
}

function traceOfOutgoing(event: OutgoingEvent): TraceContext | undefined {
  return event.traceparent === undefined ? undefined : { traceparent: event.traceparent, tracestate: event.tracestate };
}

/** What a span says about the event it sends or processes (OpenTelemetry's CloudEvents attributes). */
function eventAttributes(event: Pick<OutgoingEvent, 'id' | 'type' | 'source' | 'subject'>): Record<string, string> {
  return {
    'cloudevents.event_id': event.id,
    'cloudevents.event_type': event.type,
    'cloudevents.event_source': event.source,
    ...(event.subject !== undefined ? { 'cloudevents.event_subject': event.subject } : {}),
  };
}

const known = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'data', 'data_base64', 'datacontenttype', 'dataschema']);

/**
 * The handler for a service's event endpoint: checks the delivery's token (the service's
 * `eventAuth`), parses and validates the event, dispatches it to the route for its type, and
 * answers with the reply event (200), nothing (202) or an error.
 */
export function eventEndpoint(service: Service, routes: readonly EventRoute<any>[]): Handler<AppEnv> {
  const { eventsHandled, eventDuration } = service.metrics;
  const types = [...new Set(routes.flatMap((r) => eventTypeLabelsOf(r.type)))];
  zeroed(eventsHandled, [
    ...labelCombinations({ type: types, outcome: eventOutcomes }),
    { type: 'unparsable', outcome: 'rejected' },
    { type: 'other', outcome: 'rejected' },
  ]);
  zeroed(eventDuration, types.map((type) => ({ type })));
  const auth = service.eventAuth;
  // A service with an event endpoint loads the CloudEvents package at start, not on its first event.
  cloudEventsSdk();
  return async (c) => {
    if (auth) {
      try {
        await verifyBearer(c, auth);
      } catch (err) {
        if (err instanceof HttpError && err.status === 401) c.get('log').warn({ problem: err.message }, 'event refused: no valid delivery token');
        throw err;
      }
    }
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((value, name) => (headers[name] = value));
    let ce: CloudEvent<unknown>;
    try {
      ce = toCloudEvent(headers, await c.req.text());
    } catch (err) {
      eventsHandled.inc({ type: 'unparsable', outcome: 'rejected' });
      return c.json(errorBody('invalid_event', `not a valid CloudEvent: ${(err as Error).message}`), 400);
    }
    const route = routes.find((r) => r.matches(ce.type));
    // Label values stay bounded: only routed pipeline types are named.
    const typeLabel = route ? eventTypeLabel(ce.type) : 'other';
    const received = traceOf(ce, c);
    // With tracing on, the delivery's span: a child of the request's when that continued the event's trace.
    const span = tracing()?.startSpan({ kind: 'consumer', name: `process ${typeLabel}`, parent: received, attributes: eventAttributes(ce) });
    const log = service.logger.child({ reqId: c.get('requestId'), ceId: ce.id, ceType: ce.type, ceSource: ce.source, ...traceLogFields(span, received) });
    let failure: string | undefined;

    const handle = async (): Promise<Response> => {
      if (!route) {
        eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
        log.warn('no route for event type');
        failure = 'unsupported_event_type';
        return c.json(errorBody('unsupported_event_type', `this service does not consume ${ce.type}`), 400);
      }
      const data = route.schema.safeParse(ce.data);
      if (!data.success) {
        eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
        const message = describeZodError(data.error);
        log.warn({ problem: message }, 'invalid event data');
        failure = 'invalid_event_data';
        return c.json(errorBody('invalid_event_data', message), 400);
      }
      const extensions = Object.fromEntries(Object.entries(ce).filter(([k]) => !known.has(k)));
      const event: ReceivedEvent<unknown> = {
        id: ce.id,
        source: ce.source,
        type: ce.type,
        subject: ce.subject,
        time: ce.time,
        data: data.data,
        traceparent: received?.traceparent,
        tracestate: received?.tracestate,
        extensions,
      };
      const end = eventDuration.startTimer({ type: typeLabel });
      try {
        const reply = await route.handle(event, { log });
        end();
        if (!reply) {
          eventsHandled.inc({ type: typeLabel, outcome: 'accepted' });
          log.info('event handled');
          return c.body(null, 202);
        }
        eventsHandled.inc({ type: typeLabel, outcome: 'reply' });
        // The reply continues from this delivery's span; without tracing, from the trace the event came with.
        const trace = span?.context ?? (reply.traceparent === undefined ? received : undefined);
        const message = toBinary(trace ? { ...reply, traceparent: trace.traceparent, tracestate: trace.tracestate } : reply);
        log.info({ replyType: reply.type, replyId: reply.id }, 'event handled');
        return c.body(message.body, 200, message.headers);
      } catch (err) {
        end();
        if (err instanceof PermanentEventError) {
          eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
          log.warn({ code: err.code, problem: err.message }, 'event failed permanently');
          failure = err.code;
          return c.json(errorBody(err.code, err.message), 422);
        }
        eventsHandled.inc({ type: typeLabel, outcome: 'error' });
        log.error({ err }, 'event handling failed; the broker will retry');
        failure = 'event_failed';
        return c.json(errorBody('event_failed', 'event handling failed'), 500);
      }
    };

    if (!span) return handle();
    const res = await span.run(handle);
    span.end(failure);
    return res;
  };
}
