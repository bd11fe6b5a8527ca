/** Profile's /metrics on a fresh service: every dead-letter series at 0, and the uploads past their deadline read from the table. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { processingTimedOut } from '@avatar-pipeline/kit/events';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import { deadLetterSeries } from '../src/dead-letter.js';
import { profileStores } from '../src/index.js';
import { DEFAULT_PENDING_TIMEOUT_SECONDS, DEFAULT_PROCESSING_TIMEOUT_SECONDS } from '../src/reconcile-config.js';
import { TABLE, newPlayerId, newUploadId, profileService, startStack, testClock, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

const scrape = async (service: ReturnType<typeof profileService>) => {
  const res = await service.app.request('/metrics');
  expect(res.status).toBe(200);
  return res.text();
};

/** `name{labels} value` lines as `labels` (service label dropped) -> value. */
function series(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) found.set((m[1] ?? '').replace(/,?service="profile"/, ''), Number(m[2]));
  return found;
}

describe('a freshly started profile', () => {
  it('exports every dead-letter series at 0, so the first dead letter is an increase the alert sees', async () => {
    const dead = series(await scrape(profileService(stack)), 'avatarpipeline_deadletter_events_total');
    const expected = deadLetterSeries.map(({ type, stage, outcome }) => `type="${type}",stage="${stage}",outcome="${outcome}"`);
    expect([...dead.keys()].sort()).toEqual([...expected].sort());
    expect([...dead.values()].every((v) => v === 0)).toBe(true);
    // Among them, the series an image stage's dead letter counts.
    expect(dead.get(`type="${EventType.approved}",stage="processing",outcome="failed"`)).toBe(0);
  });

  it('exports its other counters at 0 too', async () => {
    const text = await scrape(profileService(stack));
    expect(series(text, 'avatarpipeline_profile_updates_total')).toEqual(new Map([['outcome="current"', 0], ['outcome="stale"', 0]]));
    expect([...series(text, 'avatarpipeline_profile_cognito_sync_total').keys()]).toEqual(['outcome="ok"', 'outcome="user_not_found"', 'outcome="failed"']);
    expect(series(text, 'avatarpipeline_cloudevents_handled_total').get(`type="${EventType.thumbnailed}",outcome="error"`)).toBe(0);
  });
});

describe('avatarpipeline_uploads_overdue_seconds', () => {
  const overdue = async (clock: () => Date) => series(await scrape(profileService(stack, { clock })), 'avatarpipeline_uploads_overdue_seconds');

  it('is 0 per open status while no upload is past its deadline, and how far the longest wait is past it once one is', async () => {
    const t0 = testClock(Date.now());
    expect(await overdue(t0.fn)).toEqual(new Map([['status="pending"', 0], ['status="processing"', 0], ['status="in_review"', 0]]));

    // Written with their clocks started at t0 (pending: the ticket's expiry; processing: its start), the second a minute later.
    const uploads = new UploadStore(stack.doc, TABLE, t0.fn);
    const player = newPlayerId();
    await uploads.createPending({ playerId: player, uploadId: newUploadId(), contentType: 'image/png', maxBytes: 1024, ticketExpiresAt: new Date(t0.now).toISOString() });
    const [oldest, newer] = [newUploadId(), newUploadId()];
    await uploads.createPending({ playerId: player, uploadId: oldest, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(player, oldest);
    t0.advance(60_000);
    await uploads.createPending({ playerId: player, uploadId: newer, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(player, newer);

    const at = (secondsAfterT0: number) => () => new Date(t0.now - 60_000 + secondsAfterT0 * 1000);
    expect(await overdue(at(DEFAULT_PENDING_TIMEOUT_SECONDS))).toEqual(new Map([['status="pending"', 0], ['status="processing"', 0], ['status="in_review"', 0]]));
    expect(await overdue(at(DEFAULT_PROCESSING_TIMEOUT_SECONDS + 250))).toEqual(
      new Map([
        ['status="pending"', DEFAULT_PROCESSING_TIMEOUT_SECONDS + 250 - DEFAULT_PENDING_TIMEOUT_SECONDS],
        ['status="processing"', 250],
        ['status="in_review"', 0],
      ]),
    );

    // The reconciler ends the oldest (it stays in the index until announced: still overdue), then announces it.
    const cutoff = new Date(t0.now);
    await uploads.endOverdue(player, oldest, 'processing', 'failed', cutoff, processingTimedOut);
    expect((await overdue(at(DEFAULT_PROCESSING_TIMEOUT_SECONDS + 250))).get('status="processing"')).toBe(250);
    await uploads.announced(player, oldest, 'failed');
    expect((await overdue(at(DEFAULT_PROCESSING_TIMEOUT_SECONDS + 250))).get('status="processing"')).toBe(190);
  });

  it('is left out, not stale, when the table cannot be read, and the rest of /metrics is still served', async () => {
    const unreachable = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    try {
      const text = await scrape(profileService(stack, { stores: profileStores(unreachable, TABLE) }));
      expect(series(text, 'avatarpipeline_uploads_overdue_seconds').size).toBe(0);
      expect(series(text, 'avatarpipeline_deadletter_events_total').size).toBe(deadLetterSeries.length);
    } finally {
      unreachable.destroy();
    }
  });
});
