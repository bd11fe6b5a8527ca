import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startDynamoServer, type DynamoServer } from '@avatar-pipeline/local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dynamoDocumentClient,
  epochSeconds,
  isConditionFailure,
  isTerminal,
  keys,
  ProcessedEvents,
  UploadStore,
  type OutgoingEvent,
} from '../src/index.js';

const TABLE = 'kit-test';
const NOW = new Date('2030-01-01T00:00:00.000Z');
const LATER = new Date('2030-01-01T00:05:00.000Z');
const clockAt = (date: Date) => () => date;

let server: DynamoServer;
let doc: ReturnType<typeof dynamoDocumentClient>;
let seq = 0;
/** A fresh UUIDv7-shaped id per test, so tests share one table without colliding. */
const nextUploadId = () => `0192f3a4-5b6c-7d8e-9f01-${(++seq).toString(16).padStart(12, '0')}`;

beforeAll(async () => {
  server = await startDynamoServer({ table: TABLE });
  doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: server.endpoint });
});
afterAll(async () => {
  doc?.destroy();
  await server?.close();
});

async function rawUpload(playerId: string, uploadId: string) {
  const { Item } = await doc.send(new GetCommand({ TableName: TABLE, Key: { pk: keys.player(playerId), sk: keys.upload(uploadId) } }));
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
    expect((['pending', 'processing', 'ready', 'rejected', 'failed'] as const).filter(isTerminal)).toEqual(['ready', 'rejected', 'failed']);
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
    expect(await events.lookup(event.source, event.id)).toBeUndefined();
    expect(await events.once(event, async () => reply('r'))).toEqual({ reply: reply('r'), duplicate: false });
  });

  it('keys on source and id, per consumer, with a TTL', async () => {
    const id = nextUploadId();
    const moderate = new ProcessedEvents(doc, TABLE, 'moderate', clockAt(NOW), 3600);
    await moderate.record('/a', id, reply(id));
    expect(await moderate.lookup('/a', id)).toEqual({ reply: reply(id) });
    expect(await moderate.lookup('/b', id)).toBeUndefined();
    expect(await moderate.lookup('/a', `${id}x`)).toBeUndefined();
    expect(await new ProcessedEvents(doc, TABLE, 'thumbnail').lookup('/a', id)).toBeUndefined();
    const { Items } = await doc.send(
      new ScanCommand({ TableName: TABLE, FilterExpression: 'begins_with(pk, :p) AND reply.id = :r', ExpressionAttributeValues: { ':p': 'EVENT#moderate#', ':r': `${id}.approved` } }),
    );
    expect(Items).toHaveLength(1);
    expect(Items?.[0]).toMatchObject({ sk: 'EVENT', processedAt: NOW.toISOString(), expiresAt: epochSeconds(NOW) + 3600 });
  });
});
