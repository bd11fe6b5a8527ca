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
import { cloudEventsSdk } from './sdk.js';
import type { AppEnv, Service } from './service.js';
import { eventTypeLabel } from './topology.js';

export interface ReceivedEvent<T> {
  id: string;
  source: string;
  type: string;
  subject: string | undefined;
  time: string | undefined;
  data: T;
  /** W3C trace context carried by the event (Distributed Tracing extension), if any. */
  traceparent: string | undefined;
  extensions: Readonly<Record<string, unknown>>;
}

export interface OutgoingEvent {
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  data: unknown;
  traceparent?: string;
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
  return { matches, schema, handle };
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
  });
}

/** Serializes an event in binary mode: ce-* headers plus the JSON data as body. */
export function toBinary(event: OutgoingEvent): { headers: Record<string, string>; body: string } {
  const message = cloudEventsSdk().HTTP.binary(buildCloudEvent(event));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) if (value !== undefined) headers[name] = String(value);
  return { headers, body: typeof message.body === 'string' ? message.body : JSON.stringify(message.body) };
}

export interface SinkOptions {
  fetch?: typeof fetch | undefined;
  /** Sent as the bearer token (K_SINK_OIDC_TOKEN_FILE: what a SinkBinding mounts when the broker requires OIDC). */
  tokenFile?: string | undefined;
}

/** Posts an event to a sink (K_SINK, a broker) in binary mode; throws unless it answers 2xx. */
export async function sendEvent(sink: string, event: OutgoingEvent, options: SinkOptions = {}): Promise<void> {
  const { headers, body } = toBinary(event);
  if (options.tokenFile) headers['authorization'] = `Bearer ${await readTokenFile(options.tokenFile)}`;
  const res = await (options.fetch ?? fetch)(sink, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`sink ${sink} answered ${res.status}`);
}

/** Trace context: the event's extension, else the HTTP header Knative propagates. */
function traceOf(ce: CloudEvent<unknown>, c: Context): string | undefined {
  const ext = ce['traceparent'];
  return typeof ext === 'string' ? ext : c.req.header('traceparent');
}

const known = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'data', 'data_base64', 'datacontenttype', 'dataschema']);

/**
 * The handler for a service's event endpoint: checks the delivery's token (the service's
 * `eventAuth`), parses and validates the event, dispatches it to the route for its type, and
 * answers with the reply event (200), nothing (202) or an error.
 */
export function eventEndpoint(service: Service, routes: readonly EventRoute<any>[]): Handler<AppEnv> {
  const { eventsHandled, eventDuration } = service.metrics;
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
    const traceparent = traceOf(ce, c);
    // The request logger already names the binary-mode id and the traceparent header.
    const log = c.get('log').child({
      ...(c.req.header('ce-id') === ce.id ? {} : { ceId: ce.id }),
      ceType: ce.type,
      ceSource: ce.source,
      ...(traceparent && traceparent !== c.req.header('traceparent') ? { traceparent } : {}),
    });
    if (!route) {
      eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
      log.warn('no route for event type');
      return c.json(errorBody('unsupported_event_type', `this service does not consume ${ce.type}`), 400);
    }
    const data = route.schema.safeParse(ce.data);
    if (!data.success) {
      eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
      const message = describeZodError(data.error);
      log.warn({ problem: message }, 'invalid event data');
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
      traceparent,
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
      const withTrace = traceparent && !reply.traceparent ? { ...reply, traceparent } : reply;
      const message = toBinary(withTrace);
      log.info({ replyType: reply.type, replyId: reply.id }, 'event handled');
      return c.body(message.body, 200, message.headers);
    } catch (err) {
      end();
      if (err instanceof PermanentEventError) {
        eventsHandled.inc({ type: typeLabel, outcome: 'rejected' });
        log.warn({ code: err.code, problem: err.message }, 'event failed permanently');
        return c.json(errorBody(err.code, err.message), 422);
      }
      eventsHandled.inc({ type: typeLabel, outcome: 'error' });
      log.error({ err }, 'event handling failed; the broker will retry');
      return c.json(errorBody('event_failed', 'event handling failed'), 500);
    }
  };
}
