import { GetCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { startTestBackends, type DynamoBackend } from '@avatar-pipeline/local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '../src/aws.js';
import type { OutgoingEvent } from '../src/cloudevents.js';
import type { ApprovedData } from '../src/events.js';
import { ProcessedEvents } from '../src/idempotency.js';
import { epochSeconds, isConditionFailure, isTerminal, isTransactionConditionFailure, itemKeys, keys, openStatuses, UploadStore, type OpenUpload, type Review } from '../src/table.js';

const TABLE = 'kit-test';
const NOW = new Date('2030-01-01T00:00:00.000Z');
const LATER = new Date('2030-01-01T00:05:00.000Z');
const clockAt = (date: Date) => () => date;

let backends: DynamoBackend;
let doc: ReturnType<typeof dynamoDocumentClient>;
let seq = 0;
/** A fresh UUIDv7-shaped id per test, so tests share one table without colliding. */
const nextUploadId = () => `0192f3a4-5b6c-7d8e-9f01-${(++seq).toString(16).padStart(12, '0')}`;

beforeAll(async () => {
  backends = await startTestBackends({ prefix: 'kit-table-', s3: false, dynamo: { table: TABLE } });
  doc = backends.doc;
});
afterAll(async () => {
  await backends?.close();
});

async function rawUpload(playerId: string, uploadId: string) {
  const { Item } = await doc.send(new GetCommand({ TableName: TABLE, Key: itemKeys.upload(playerId, uploadId) }));
  return Item;
}

describe('UploadStore', () => {
  const upload = (uploadId: string) => ({ playerId: 'p-1', uploadId, contentType: 'image/png', maxBytes: 1024 });

  it('creates a pending upload with a one-day TTL, and only once', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    const created = await store.createPending(upload(id));
    expect(created).toEqual({ ...upload(id), status: 'pending', createdAt: NOW.toISOString(), updatedAt: NOW.toISOString() });
    expect(await store.get('p-1', id)).toEqual(created);
    expect((await rawUpload('p-1', id))?.['expiresAt']).toBe(epochSeconds(NOW) + 24 * 3600);

    const again = new UploadStore(doc, TABLE, clockAt(LATER)).createPending({ ...upload(id), contentType: 'image/jpeg' });
    const err = await again.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConditionFailure(err)).toBe(true);
    expect(await store.get('p-1', id)).toEqual(created);
  });

  it('returns undefined for an unknown upload', async () => {
    expect(await new UploadStore(doc, TABLE).get('p-1', nextUploadId())).toBeUndefined();
  });

  it('moves pending to processing, and nothing else', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    await store.createPending(upload(id));
    const later = new UploadStore(doc, TABLE, clockAt(LATER));
    await later.markProcessing('p-1', id);
    expect(await store.get('p-1', id)).toMatchObject({ status: 'processing', updatedAt: LATER.toISOString() });
    await store.markProcessing('p-1', id);
    expect(await store.get('p-1', id)).toMatchObject({ status: 'processing', updatedAt: LATER.toISOString() });

    const done = nextUploadId();
    await store.createPending(upload(done));
    await store.finish('p-1', done, 'rejected', { reason: { code: 'explicit', message: 'no' } });
    await later.markProcessing('p-1', done);
    expect(await store.get('p-1', done)).toMatchObject({ status: 'rejected', updatedAt: NOW.toISOString() });

    const missing = nextUploadId();
    await store.markProcessing('p-1', missing);
    expect(await rawUpload('p-1', missing)).toBeUndefined();
  });

  it('knows which statuses are terminal', () => {
    expect((['pending', 'processing', 'in_review', 'ready', 'rejected', 'failed', 'expired'] as const).filter(isTerminal)).toEqual(['ready', 'rejected', 'failed', 'expired']);
    expect(openStatuses).toEqual(['pending', 'processing', 'in_review']);
  });

  it('finishes an upload once; a second finish changes nothing and returns the first outcome', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    await store.createPending(upload(id));
    await store.markProcessing('p-1', id);
    const avatar = { thumbnails: { '64': 'https://cdn.test/64.webp' }, full: 'https://cdn.test/full.webp' };
    const labels = [{ name: 'Neutral', confidence: 98 }];

    const later = new UploadStore(doc, TABLE, clockAt(LATER));
    const first = await later.finish('p-1', id, 'ready', { avatar, labels });
    expect(first.changed).toBe(true);
    expect(first.record).toEqual({ ...upload(id), status: 'ready', avatar, labels, createdAt: NOW.toISOString(), updatedAt: LATER.toISOString() });
    expect((await rawUpload('p-1', id))?.['expiresAt']).toBe(epochSeconds(LATER) + 30 * 24 * 3600);

    const second = await store.finish('p-1', id, 'failed', { reason: { code: 'timeout', message: 'too slow' } });
    expect(second).toEqual({ changed: false, record: first.record });
    const same = await store.finish('p-1', id, 'ready', { avatar: { ...avatar, full: 'https://cdn.test/other.webp' } });
    expect(same).toEqual({ changed: false, record: first.record });
    expect(await store.get('p-1', id)).toEqual(first.record);
  });

  it('finishes straight from pending, and leaves unknown uploads alone', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    await store.createPending(upload(id));
    const reason = { code: 'explicit', message: 'rejected by moderation' };
    expect(await store.finish('p-1', id, 'rejected', { reason })).toMatchObject({ changed: true, record: { status: 'rejected', reason } });

    const missing = nextUploadId();
    expect(await store.finish('p-1', missing, 'failed', { reason })).toEqual({ changed: false, record: undefined });
    expect(await rawUpload('p-1', missing)).toBeUndefined();
  });

  it('records the first approved bytes of an upload; other bytes are never approved after them', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    await store.createPending(upload(id));
    await store.markProcessing('p-1', id);
    const first = 'a'.repeat(64);
    const later = 'b'.repeat(64);

    expect(await store.approvedSha256('p-1', id)).toBeUndefined();
    expect(await store.approve('p-1', id, first)).toEqual({ approved: true, record: { ...upload(id), status: 'processing', sha256: first, createdAt: NOW.toISOString(), updatedAt: NOW.toISOString() } });
    expect(await store.approvedSha256('p-1', id)).toBe(first);
    // The same bytes again (a redelivery, a retried POST of the same file): still approved.
    expect(await store.approve('p-1', id, first)).toMatchObject({ approved: true, record: { sha256: first } });
    expect(await store.approve('p-1', id, later)).toMatchObject({ approved: false, record: { status: 'processing', sha256: first } });

    // A rejection of other bytes cannot undo the approval; one of the approved bytes can (one terminal state wins).
    const reason = { code: 'moderation', message: 'no' };
    expect(await store.finish('p-1', id, 'rejected', { reason }, { sha256: later })).toMatchObject({ changed: false, record: { status: 'processing' } });
    expect(await store.finish('p-1', id, 'rejected', { reason }, { sha256: undefined })).toMatchObject({ changed: false, record: { status: 'processing' } });
    expect(await store.finish('p-1', id, 'rejected', { reason }, { sha256: first })).toMatchObject({ changed: true, record: { status: 'rejected', sha256: first } });
    expect(await store.approve('p-1', id, first)).toMatchObject({ approved: false, record: { status: 'rejected' } });

    // Nothing approved yet: a rejection stands whatever it read; an unknown upload is never approved.
    const fresh = nextUploadId();
    await store.createPending(upload(fresh));
    expect(await store.finish('p-1', fresh, 'rejected', { reason }, { sha256: undefined })).toMatchObject({ changed: true, record: { status: 'rejected' } });
    expect(await store.approve('p-1', nextUploadId(), first)).toEqual({ approved: false, record: undefined });
  });

  it('keeps players apart', async () => {
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = nextUploadId();
    await store.createPending(upload(id));
    expect(await store.get('p-2', id)).toBeUndefined();
    expect(await store.finish('p-2', id, 'ready')).toEqual({ changed: false, record: undefined });
    expect(await store.get('p-1', id)).toMatchObject({ status: 'pending' });
  });
});

describe('UploadStore.requestReview', () => {
  let player = 0;
  const nextPlayer = () => `p-review-${++player}`;
  const SHA = 'c'.repeat(64);
  const FINGERPRINT = '0123456789abcdef';
  const labels = [{ name: 'Suggestive', confidence: 71.5 }];
  const approvedData = (playerId: string, uploadId: string, sha256 = SHA): ApprovedData => ({
    playerId,
    uploadId,
    uploadedAt: NOW.toISOString(),
    bucket: 'avatars',
    key: `uploads/${playerId}/${uploadId}`,
    eTag: '"etag"',
    sha256,
    contentType: 'image/png',
    width: 512,
    height: 512,
    square: { left: 0, top: 0, size: 512 },
    provider: 'fake',
    labels,
  });
  const request = (playerId: string, uploadId: string, sha256 = SHA, fingerprint = FINGERPRINT) => ({
    playerId,
    uploadId,
    review: { fingerprint, labels, uploadedAt: NOW.toISOString(), approved: approvedData(playerId, uploadId, sha256) },
  });
  async function processing(playerId: string) {
    const id = nextUploadId();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    await store.createPending({ playerId, uploadId: id, contentType: 'image/png', maxBytes: 1024 });
    await store.markProcessing(playerId, id);
    return id;
  }
  async function rawReview(uploadId: string) {
    const { Item } = await doc.send(new GetCommand({ TableName: TABLE, Key: itemKeys.review(uploadId), ConsistentRead: true }));
    return Item;
  }
  const inIndex = async (store: UploadStore, playerId: string) => {
    const found: OpenUpload[] = [];
    for await (const u of store.openUploads('in_review')) if (u.playerId === playerId) found.push(u);
    return found;
  };

  it('moves a processing upload to in_review with its REVIEW item, in the open-uploads index from the request on', async () => {
    const playerId = nextPlayer();
    const id = await processing(playerId);
    const store = new UploadStore(doc, TABLE, clockAt(LATER));
    const { changed, record } = await store.requestReview(request(playerId, id));
    expect(changed).toBe(true);
    expect(record).toMatchObject({ status: 'in_review', fingerprint: FINGERPRINT, sha256: SHA, updatedAt: LATER.toISOString() });
    expect(record).not.toHaveProperty('openStatus');
    const raw = await rawUpload(playerId, id);
    expect(raw).toMatchObject({ openStatus: 'in_review', openSince: LATER.toISOString(), expiresAt: epochSeconds(LATER) + 30 * 24 * 3600 });
    expect((await inIndex(store, playerId)).map((u) => [u.uploadId, u.openSince, u.status])).toEqual([[id, LATER.toISOString(), 'in_review']]);

    const { pk, sk, ...review } = (await rawReview(id)) ?? {};
    expect([pk, sk]).toEqual([`REVIEW#${id}`, 'REVIEW']);
    expect(review).toEqual({
      uploadId: id,
      playerId,
      status: 'open',
      labels,
      fingerprint: FINGERPRINT,
      requestedAt: LATER.toISOString(),
      uploadedAt: NOW.toISOString(),
      approved: approvedData(playerId, id),
    } satisfies Review);
  });

  it('is idempotent: a redelivery finds the upload in review and changes nothing', async () => {
    const playerId = nextPlayer();
    const id = await processing(playerId);
    const first = await new UploadStore(doc, TABLE, clockAt(NOW)).requestReview(request(playerId, id));
    const reviewBefore = await rawReview(id);
    const again = await new UploadStore(doc, TABLE, clockAt(LATER)).requestReview(request(playerId, id));
    expect(again).toEqual({ changed: false, record: first.record });
    expect(await rawReview(id)).toEqual(reviewBefore);
  });

  it('leaves an upload alone unless it is processing: pending, ended or unknown', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const pending = nextUploadId();
    await store.createPending({ playerId, uploadId: pending, contentType: 'image/png', maxBytes: 1024 });
    expect(await store.requestReview(request(playerId, pending))).toMatchObject({ changed: false, record: { status: 'pending' } });

    const ended = await processing(playerId);
    await store.finish(playerId, ended, 'rejected', { reason: { code: 'moderation', message: 'no' } });
    expect(await store.requestReview(request(playerId, ended))).toMatchObject({ changed: false, record: { status: 'rejected' } });

    const unknown = nextUploadId();
    expect(await store.requestReview(request(playerId, unknown))).toEqual({ changed: false, record: undefined });
    // Nothing half written: no REVIEW item for any of them.
    for (const id of [pending, ended, unknown]) expect(await rawReview(id)).toBeUndefined();
    expect(await rawUpload(playerId, unknown)).toBeUndefined();
  });

  it('holds to the first bytes decided: other bytes never go to review after an approval', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = await processing(playerId);
    await store.approve(playerId, id, SHA);
    expect(await store.requestReview(request(playerId, id, 'd'.repeat(64)))).toMatchObject({ changed: false, record: { status: 'processing', sha256: SHA } });
    expect(await rawReview(id)).toBeUndefined();
    // The approved bytes themselves may still go (their own verdict, from the same pixels).
    expect(await store.requestReview(request(playerId, id))).toMatchObject({ changed: true, record: { status: 'in_review' } });
    // In review, other bytes cannot be approved nor end the upload; finish leaves in_review to a moderator or the timeout.
    expect(await store.approve(playerId, id, SHA)).toMatchObject({ approved: false, record: { status: 'in_review' } });
    expect(await store.finish(playerId, id, 'rejected', { reason: { code: 'moderation', message: 'no' } }, { sha256: SHA })).toMatchObject({ changed: false, record: { status: 'in_review' } });
  });

  it('never reopens a decided review: after an approval the upload is processing again, and a redelivery changes nothing', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const id = await processing(playerId);
    await store.requestReview(request(playerId, id));
    // A moderator's approval, as profile writes it: the review decided and the upload processing again, together.
    await doc.send(
      new UpdateCommand({ TableName: TABLE, Key: itemKeys.review(id), UpdateExpression: 'SET #status = :approved', ExpressionAttributeNames: { '#status': 'status' }, ExpressionAttributeValues: { ':approved': 'approved' } }),
    );
    await doc.send(
      new UpdateCommand({ TableName: TABLE, Key: { pk: keys.player(playerId), sk: keys.upload(id) }, UpdateExpression: 'SET #status = :processing', ExpressionAttributeNames: { '#status': 'status' }, ExpressionAttributeValues: { ':processing': 'processing' } }),
    );
    expect(await store.requestReview(request(playerId, id))).toMatchObject({ changed: false, record: { status: 'processing' } });
    expect(await rawReview(id)).toMatchObject({ status: 'approved' });
  });

  it('ends an overdue review rejected through endOverdue, like the other open states', async () => {
    const playerId = nextPlayer();
    const id = await processing(playerId);
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    await store.requestReview(request(playerId, id));
    const timeout = { code: 'review_timeout', message: 'not reviewed in time' };
    expect((await store.endOverdue(playerId, id, 'processing', 'failed', LATER, timeout)).changed).toBe(false);
    expect(await store.endOverdue(playerId, id, 'in_review', 'rejected', LATER, timeout)).toMatchObject({ changed: true, unannounced: true, record: { status: 'rejected', reason: timeout } });
    await store.announced(playerId, id, 'rejected');
    expect(await inIndex(store, playerId)).toEqual([]);
  });

  it('tells a condition that failed in a transaction from other cancellations', () => {
    const cancelled = (codes: string[]) => Object.assign(new Error('cancelled'), { name: 'TransactionCanceledException', CancellationReasons: codes.map((Code) => ({ Code })) });
    expect(isTransactionConditionFailure(cancelled(['None', 'ConditionalCheckFailed']))).toBe(true);
    expect(isTransactionConditionFailure(cancelled(['TransactionConflict', 'None']))).toBe(false);
    expect(isTransactionConditionFailure(Object.assign(new Error('x'), { name: 'ConditionalCheckFailedException' }))).toBe(false);
    expect(isTransactionConditionFailure(undefined)).toBe(false);
  });
});

describe('ProcessedEvents', () => {
  const reply = (uploadId: string): OutgoingEvent => ({
    id: `${uploadId}.approved`,
    source: '/avatar-pipeline/moderate',
    type: 'avatarpipeline.avatar.approved',
    subject: `uploads/p-1/${uploadId}`,
    data: { uploadId, labels: [] },
  });

  it('runs the work once and answers redeliveries with the recorded reply', async () => {
    const events = new ProcessedEvents(doc, TABLE, 'moderate', clockAt(NOW));
    const id = nextUploadId();
    let runs = 0;
    const work = async () => {
      runs += 1;
      return runs === 1 ? reply(id) : { ...reply(id), id: 'a-different-reply' };
    };
    const event = { source: 'aws:s3.us-east-1.avatars', id: `req-${id}` };
    expect(await events.once(event, work)).toEqual({ reply: reply(id), duplicate: false });
    expect(await events.once(event, work)).toEqual({ reply: reply(id), duplicate: true });
    expect(await new ProcessedEvents(doc, TABLE, 'moderate', clockAt(LATER)).once(event, work)).toEqual({ reply: reply(id), duplicate: true });
    expect(runs).toBe(1);
  });

  it('remembers events that had no reply', async () => {
    const events = new ProcessedEvents(doc, TABLE, 'push');
    let runs = 0;
    const event = { source: '/avatar-pipeline/profile', id: `${nextUploadId()}.ready` };
    const work = async () => {
      runs += 1;
      return undefined;
    };
    expect(await events.once(event, work)).toEqual({ reply: undefined, duplicate: false });
    expect(await events.once(event, work)).toEqual({ reply: undefined, duplicate: true });
    expect(runs).toBe(1);
  });

  it('records nothing when the work fails, so the retry runs it again', async () => {
    const events = new ProcessedEvents(doc, TABLE, 'thumbnail');
    const event = { source: '/s', id: nextUploadId() };
    await expect(
      events.once(event, async () => {
        throw new Error('transient');
      }),
    ).rejects.toThrow('transient');
    expect(await events.lookup(event)).toBeUndefined();
    expect(await events.once(event, async () => reply('r'))).toEqual({ reply: reply('r'), duplicate: false });
  });

  it('keys on source and id, per consumer, with a TTL', async () => {
    const id = nextUploadId();
    const moderate = new ProcessedEvents(doc, TABLE, 'moderate', clockAt(NOW), 3600);
    await moderate.record({ source: '/a', id }, reply(id));
    expect(await moderate.lookup({ source: '/a', id })).toEqual({ reply: reply(id) });
    expect(await moderate.lookup({ source: '/b', id })).toBeUndefined();
    expect(await moderate.lookup({ source: '/a', id: `${id}x` })).toBeUndefined();
    expect(await new ProcessedEvents(doc, TABLE, 'thumbnail').lookup({ source: '/a', id })).toBeUndefined();
    const { Items } = await doc.send(
      new ScanCommand({ TableName: TABLE, FilterExpression: 'begins_with(pk, :p) AND reply.id = :r', ExpressionAttributeValues: { ':p': 'EVENT#moderate#', ':r': `${id}.approved` } }),
    );
    expect(Items).toHaveLength(1);
    expect(Items?.[0]).toMatchObject({ sk: 'EVENT', processedAt: NOW.toISOString(), expiresAt: epochSeconds(NOW) + 3600 });
  });

  it("keeps the records of an upload's events in its player's partition, where erasing the player finds them", async () => {
    const uploadId = nextUploadId();
    const moderate = new ProcessedEvents(doc, TABLE, 'moderate', clockAt(NOW));
    const event = { source: 'aws:s3.us-east-1.avatars', id: 'REQ.HOST', subject: `uploads/p-events/${uploadId}` };
    await moderate.record(event, reply(uploadId));
    expect(await moderate.lookup(event)).toEqual({ reply: reply(uploadId) });
    // The same source and id about another upload, or about none, is another record.
    expect(await moderate.lookup({ ...event, subject: `uploads/p-other/${uploadId}` })).toBeUndefined();
    expect(await moderate.lookup({ source: event.source, id: event.id })).toBeUndefined();
    const { Items } = await doc.send(
      new QueryCommand({ TableName: TABLE, KeyConditionExpression: 'pk = :pk AND begins_with(sk, :sk)', ExpressionAttributeValues: { ':pk': 'PLAYER#p-events', ':sk': 'EVENT#moderate#' } }),
    );
    expect(Items?.map((item) => (item['reply'] as { id: string }).id)).toEqual([`${uploadId}.approved`]);
  });
});

describe('the open-uploads index', () => {
  // Its own player per test: the index is shared by the whole table.
  let player = 0;
  const nextPlayer = () => `p-open-${++player}`;
  const upload = (playerId: string, uploadId: string, ticketExpiresAt?: string) => ({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024, ticketExpiresAt });
  const listed = async (store: UploadStore, status: 'pending' | 'processing', before?: Date, playerId?: string) => {
    const found: OpenUpload[] = [];
    for await (const u of store.openUploads(status, before, 2)) if (!playerId || u.playerId === playerId) found.push(u);
    return found;
  };
  const reason = { code: 'expired', message: 'too late' };

  it('files a pending upload under its ticket expiry and a processing one under its start, oldest first, and drops ended ones', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const [a, b, c] = [nextUploadId(), nextUploadId(), nextUploadId()];
    await store.createPending(upload(playerId, a, '2030-01-01T00:05:00Z'));
    await store.createPending(upload(playerId, b, '2030-01-01T00:03:00.000Z'));
    await store.createPending(upload(playerId, c));
    expect((await listed(store, 'pending', undefined, playerId)).map((u) => [u.uploadId, u.openSince, u.status])).toEqual([
      [c, NOW.toISOString(), 'pending'],
      [b, '2030-01-01T00:03:00.000Z', 'pending'],
      [a, '2030-01-01T00:05:00.000Z', 'pending'],
    ]);
    expect((await listed(store, 'pending', new Date('2030-01-01T00:04:00Z'), playerId)).map((u) => u.uploadId)).toEqual([c, b]);
    // The index holds only what is open: the item's other attributes stay out of the record.
    expect(await store.get(playerId, a)).not.toHaveProperty('openStatus');

    await new UploadStore(doc, TABLE, clockAt(LATER)).markProcessing(playerId, a);
    expect((await listed(store, 'pending', undefined, playerId)).map((u) => u.uploadId)).toEqual([c, b]);
    expect((await listed(store, 'processing', undefined, playerId)).map((u) => [u.uploadId, u.openSince])).toEqual([[a, LATER.toISOString()]]);
    await store.finish(playerId, a, 'ready');
    await store.finish(playerId, b, 'rejected');
    expect(await listed(store, 'processing', undefined, playerId)).toEqual([]);
    expect((await listed(store, 'pending', undefined, playerId)).map((u) => u.uploadId)).toEqual([c]);
    const raw = await rawUpload(playerId, a);
    expect(raw).not.toHaveProperty('openStatus');
    expect(raw).not.toHaveProperty('openSince');
  });

  it('ends an overdue upload once, only while it still waits since before the cutoff, and keeps it listed until announced', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(LATER));
    const id = nextUploadId();
    await store.createPending(upload(playerId, id, '2030-01-01T00:01:00Z'));
    // Not overdue yet for this cutoff.
    const early = await store.endOverdue(playerId, id, 'pending', 'expired', new Date('2030-01-01T00:00:30Z'), reason);
    expect(early).toMatchObject({ changed: false, unannounced: false, record: { status: 'pending' } });
    // Another open state than the one it waits in.
    expect((await store.endOverdue(playerId, id, 'processing', 'failed', LATER, reason)).changed).toBe(false);

    const ended = await store.endOverdue(playerId, id, 'pending', 'expired', LATER, reason);
    expect(ended).toMatchObject({ changed: true, unannounced: true, record: { status: 'expired', reason, updatedAt: LATER.toISOString() } });
    expect((await rawUpload(playerId, id))?.['expiresAt']).toBe(epochSeconds(LATER) + 30 * 24 * 3600);
    // A second pass: nothing changes, but the end is still to be announced.
    expect(await store.endOverdue(playerId, id, 'pending', 'expired', LATER, reason)).toMatchObject({ changed: false, unannounced: true, record: { status: 'expired' } });
    expect((await listed(store, 'pending', LATER, playerId)).map((u) => [u.uploadId, u.status])).toEqual([[id, 'expired']]);
    expect(await store.oldestOpen('pending').then((u) => u?.playerId === playerId)).toBe(false);

    await store.announced(playerId, id, 'expired');
    expect(await listed(store, 'pending', LATER, playerId)).toEqual([]);
    expect(await store.endOverdue(playerId, id, 'pending', 'expired', LATER, reason)).toMatchObject({ changed: false, unannounced: false });
    // Nothing else may end it now.
    expect((await store.finish(playerId, id, 'ready')).changed).toBe(false);
  });

  it('loses cleanly to the pipeline: an upload that moved on or ended is left alone', async () => {
    const playerId = nextPlayer();
    const store = new UploadStore(doc, TABLE, clockAt(NOW));
    const [moved, done] = [nextUploadId(), nextUploadId()];
    for (const id of [moved, done]) await store.createPending(upload(playerId, id));
    await store.markProcessing(playerId, moved);
    await store.finish(playerId, done, 'rejected', { reason: { code: 'corrupt', message: 'x' } });
    expect(await store.endOverdue(playerId, moved, 'pending', 'expired', LATER, reason)).toMatchObject({ changed: false, unannounced: false, record: { status: 'processing' } });
    expect(await store.endOverdue(playerId, done, 'pending', 'expired', LATER, reason)).toMatchObject({ changed: false, unannounced: false, record: { status: 'rejected' } });
    expect(await store.endOverdue(playerId, nextUploadId(), 'pending', 'expired', LATER, reason)).toEqual({ changed: false, unannounced: false, record: undefined });

    // processing -> failed, the same way.
    const timedOut = await store.endOverdue(playerId, moved, 'processing', 'failed', LATER, { code: 'timeout', message: 'slow' });
    expect(timedOut).toMatchObject({ changed: true, record: { status: 'failed', reason: { code: 'timeout' } } });
    // The pipeline's own late end loses.
    expect((await store.finish(playerId, moved, 'ready')).record?.status).toBe('failed');
  });
});
