/**
 * The broker's live event feed (GET /_broker/events, `npm run events`): a real broker on a real
 * port, real HTTP subscribers, the feed read over HTTP by the same client the CLI uses.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventType } from '@avatar-pipeline/kit/topology';
import { FEED_PATH, type FeedEntry } from '../src/broker/broker.js';
import { readFeed } from '../src/broker/feed-client.js';
import { replyWith } from './support/subscriber.js';
import { startServedBroker, testEvent, trigger, type ServedBroker } from './support/served-broker.js';

const open: ServedBroker[] = [];
afterEach(async () => {
  for (const served of open.splice(0)) await served.close();
});

/** Follows the feed of `served` from now on; `ended` resolves when the broker ends the stream. */
async function follow(served: ServedBroker): Promise<{ entries: FeedEntry[]; ended: Promise<void> }> {
  const entries: FeedEntry[] = [];
  let opened!: () => void;
  const ready = new Promise<void>((resolve) => (opened = resolve));
  const ended = (async () => {
    for await (const { entry } of readFeed(`${served.url}${FEED_PATH}`, opened)) if (entry) entries.push(entry);
  })();
  await ready;
  return { entries, ended };
}

const brief = (e: FeedEntry) => {
  switch (e.outcome) {
    case 'accepted':
      return [e.outcome, e.id, e.origin, e.triggers.join()];
    case 'dropped':
      return [e.outcome, e.id, e.reason];
    case 'retrying':
      return [e.outcome, e.id, e.trigger, e.destination, e.attempt, e.status];
    case 'delivered':
      return [e.outcome, e.id, e.trigger, e.status, e.attempts, e.reply?.id];
    case 'dead_lettered':
      return [e.outcome, e.id, e.trigger, e.errorCode, e.problem];
    case 'undeliverable':
      return [e.outcome, e.id, e.trigger, e.reason, e.problem];
  }
};

describe('local broker: live event feed', () => {
  it('reports an accepted event, its delivery, the reply it led to and an event no trigger wants', async () => {
    const served = await startServedBroker([trigger('approve', 'test.upload', 'moderate'), trigger('thumb', EventType.approved, 'thumbnail')], {
      moderate: (r) => replyWith({ id: `${r.event?.id}.approved`, source: '/moderate', type: EventType.approved, subject: r.event?.subject ?? '', data: {} }),
      thumbnail: () => ({ status: 202 }),
    });
    open.push(served);
    const feed = await follow(served);
    served.broker.ingest(testEvent('test.upload', 'u1', 'uploads/p1/u1'));
    served.broker.ingest(testEvent('test.unrouted', 'x1'));
    await served.broker.idle();
    await vi.waitFor(() => expect(feed.entries).toHaveLength(5));
    expect(feed.entries.map(brief)).toEqual([
      ['accepted', 'u1', 'http', 'approve'],
      ['dropped', 'x1', 'no_trigger'],
      // The reply enters the broker while the delivery that brought it completes.
      ['accepted', 'u1.approved', 'reply', 'thumb'],
      ['delivered', 'u1', 'approve', 200, 1, 'u1.approved'],
      ['delivered', 'u1.approved', 'thumb', 202, 1, undefined],
    ]);
    expect(feed.entries[0]).toMatchObject({ type: 'test.upload', source: '/test', subject: 'uploads/p1/u1' });
    expect(feed.entries[4]).toMatchObject({ type: EventType.approved, source: '/moderate', subject: 'uploads/p1/u1' });
    for (const entry of feed.entries) expect(Date.parse(entry.time)).not.toBeNaN();
  });

  it('reports each retry, a dead letter and an event neither the subscriber nor the sink takes', async () => {
    const served = await startServedBroker([trigger('flaky', 'test.flaky', 'moderate'), trigger('broken', 'test.broken', 'thumbnail', { retry: 0 })], {
      moderate: (_r, n) => ({ status: n < 2 ? 503 : 202 }),
      thumbnail: () => ({ status: 400, body: 'bad event' }),
      // Takes the first dead letter, refuses everything after it.
      profile: (_r, n) => ({ status: n === 0 ? 202 : 500 }),
    });
    open.push(served);
    const feed = await follow(served);
    served.broker.ingest(testEvent('test.flaky', 'f1'));
    await served.broker.idle();
    served.broker.ingest(testEvent('test.broken', 'b1'));
    await served.broker.idle();
    served.broker.ingest(testEvent('test.broken', 'b2'));
    await served.broker.idle();
    await vi.waitFor(() => expect(feed.entries).toHaveLength(9));
    expect(feed.entries.map(brief)).toEqual([
      ['accepted', 'f1', 'http', 'flaky'],
      ['retrying', 'f1', 'flaky', 'subscriber', 1, 503],
      ['retrying', 'f1', 'flaky', 'subscriber', 2, 503],
      ['delivered', 'f1', 'flaky', 202, 3, undefined],
      ['accepted', 'b1', 'http', 'broken'],
      ['dead_lettered', 'b1', 'broken', 400, 'answered 400'],
      ['accepted', 'b2', 'http', 'broken'],
      ['retrying', 'b2', 'broken', 'dead-letter', 1, 500],
      ['undeliverable', 'b2', 'broken', 'dead_letter_failed', 'answered 500'],
    ]);
    // Exponential from 10 ms: the second retry waits twice as long as the first.
    expect(feed.entries.filter((e) => e.outcome === 'retrying' && e.id === 'f1').map((e) => e.outcome === 'retrying' && e.retryInMs)).toEqual([10, 20]);
  });

  it('ends every stream when the broker closes', async () => {
    const served = await startServedBroker([], {});
    const feed = await follow(served);
    await served.close();
    await expect(feed.ended).resolves.toBeUndefined();
  });
});
