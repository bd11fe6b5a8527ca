/**
 * The broker's live feed for local debugging (`npm run events`): one entry per thing that happens to
 * an event (accepted, dropped, each retry, delivered, dead-lettered, parked), served as
 * Server-Sent Events on the broker's loopback port. Nothing is kept: a client sees what happens
 * while it is connected.
 */
import type { Handler } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import type { Event } from './events.js';

/** Where the broker serves the feed. */
export const FEED_PATH = '/_broker/events';

const trigger = z.string();
const event = {
  /** When it happened. */
  time: z.string(),
  id: z.string(),
  type: z.string(),
  source: z.string(),
  subject: z.string().optional(),
};

export const feedEntrySchema = z.discriminatedUnion('outcome', [
  z.object({ ...event, outcome: z.literal('accepted'), origin: z.enum(['http', 'reply']), triggers: z.array(trigger) }),
  z.object({ ...event, outcome: z.literal('dropped'), origin: z.enum(['http', 'reply']), reason: z.enum(['no_trigger', 'ttl_exceeded']) }),
  z.object({
    ...event,
    outcome: z.literal('retrying'),
    trigger,
    destination: z.enum(['subscriber', 'dead-letter']),
    attempt: z.number(),
    status: z.number().optional(),
    problem: z.string(),
    retryInMs: z.number(),
  }),
  z.object({
    ...event,
    outcome: z.literal('delivered'),
    trigger,
    status: z.number(),
    attempts: z.number(),
    reply: z.object({ id: z.string(), type: z.string() }).optional(),
  }),
  // `problem`: why the subscriber did not take it.
  z.object({ ...event, outcome: z.literal('dead_lettered'), trigger, problem: z.string(), errorCode: z.number().optional() }),
  z.object({ ...event, outcome: z.literal('undeliverable'), trigger, reason: z.string(), problem: z.string().optional() }),
]);

export type FeedEntry = z.output<typeof feedEntrySchema>;
type Outcome = FeedEntry['outcome'];
/** An entry without the event's own fields, which `report` fills in. */
export type FeedDetails<O extends Outcome = Outcome> = O extends Outcome
  ? Omit<Extract<FeedEntry, { outcome: O }>, keyof typeof event>
  : never;

interface Subscriber {
  entry(entry: FeedEntry): void;
  end(): void;
}

/** A client that stops reading is cut off after this many entries queue up for it. */
const MAX_QUEUED = 1000;
/**
 * A comment this often keeps a quiet stream open: fetch (undici) gives up on a response body that
 * sends nothing for 5 minutes.
 */
const HEARTBEAT_MS = 30_000;

export class EventFeed {
  private readonly subscribers = new Set<Subscriber>();
  private closed = false;

  /** Publishes what happened to `about`, stamped now. */
  report(about: Event, details: FeedDetails): void {
    if (this.subscribers.size === 0) return;
    const entry = {
      time: new Date().toISOString(),
      id: about.id,
      type: about.type,
      source: about.source,
      ...(about.subject === undefined ? {} : { subject: about.subject }),
      ...details,
    } as FeedEntry;
    for (const subscriber of this.subscribers) subscriber.entry(entry);
  }

  /** Serves the feed as Server-Sent Events, one `data:` line of JSON per entry. */
  readonly handler: Handler<AppEnv> = (c) => {
    const res = streamSSE(c, async (stream) => {
      // A comment first, so the client gets the response (and knows it is connected) at once.
      await stream.write(': connected\n\n');
      const heartbeat = setInterval(() => void stream.write(': heartbeat\n\n'), HEARTBEAT_MS);
      await new Promise<void>((resolve) => {
        let queued = 0;
        const subscriber: Subscriber = {
          entry: (entry) => {
            if (queued >= MAX_QUEUED) return subscriber.end();
            queued += 1;
            void stream.writeSSE({ data: JSON.stringify(entry) }).finally(() => (queued -= 1));
          },
          end: () => {
            this.subscribers.delete(subscriber);
            resolve();
          },
        };
        if (this.closed) return resolve();
        this.subscribers.add(subscriber);
        stream.onAbort(subscriber.end);
      });
      clearInterval(heartbeat);
    });
    // Nothing follows a feed on its connection: closed with the stream, it does not hold up the port's close.
    res.headers.set('Connection', 'close');
    return res;
  };

  /** Ends every client's stream (the broker is closing). */
  close(): void {
    this.closed = true;
    for (const subscriber of [...this.subscribers]) subscriber.end();
  }
}
