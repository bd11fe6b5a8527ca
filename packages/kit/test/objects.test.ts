/**
 * The objects port: one contract, run against the S3 implementation on real servers (s3rver,
 * and moto's S3 where the Python tools are installed: always on CI) and against the in-memory
 * fake the services' failure tests use, so the fake cannot drift from what the services meet.
 */
import { CreateBucketCommand, GetObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { startTestBackends, BUCKET, motoSkipReason, startMoto, type MotoServer, type S3Backend } from '@avatar-pipeline/local';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { s3Client } from '../src/aws.js';
import { contentSha256, s3Objects, type ObjectStore } from '../src/objects.js';
import { memoryObjects } from '../src/memory-objects.js';

const motoSkipped = motoSkipReason();
let backend: S3Backend;
let moto: MotoServer | undefined;
let motoS3: S3Client;
beforeAll(async () => {
  backend = await startTestBackends({ dynamo: false });
  if (motoSkipped) return;
  moto = await startMoto();
  motoS3 = s3Client({ region: 'us-east-1', s3Endpoint: moto.endpoint });
  await motoS3.send(new CreateBucketCommand({ Bucket: BUCKET }));
}, 120_000);
afterAll(async () => {
  motoS3?.destroy();
  await Promise.all([backend?.close(), moto?.close()]);
});

const implementations: [string, () => ObjectStore][] = [
  ['s3Objects on s3rver', () => s3Objects(backend.s3, BUCKET)],
  ...(motoSkipped ? [] : [['s3Objects on moto', () => s3Objects(motoS3, BUCKET)] as [string, () => ObjectStore]]),
  ['memoryObjects', () => memoryObjects(BUCKET)],
];

describe.each(implementations)('%s', (_name, make) => {
  let objects: ObjectStore;
  const bytes = Buffer.from('avatar bytes');
  beforeEach(async () => {
    objects = make();
    await objects.deletePrefix('t/');
  });

  it('reads what it wrote, pinned to the ETag it reported, the SHA-256 of the bytes, or nothing', async () => {
    await objects.put('t/a', bytes, { contentType: 'image/webp', cacheControl: 'public, max-age=60' });
    const read = await objects.getPinned('t/a', {}, 1024);
    expect(read).toMatchObject({ kind: 'ok', body: bytes, contentType: 'image/webp' });
    if (read.kind !== 'ok') return;
    expect(read.eTag).not.toContain('"');
    expect(await objects.getPinned('t/a', { eTag: read.eTag }, 1024)).toMatchObject({ kind: 'ok', body: bytes });
    expect(await objects.getPinned('t/a', { eTag: `"${read.eTag}"`, sha256: contentSha256(bytes) }, 1024)).toMatchObject({ kind: 'ok' });
  });

  it('tells a replaced object (other ETag, other bytes) and a missing one apart from a failure', async () => {
    await objects.put('t/a', bytes, { contentType: 'image/png' });
    expect(await objects.getPinned('t/a', { eTag: '0123456789abcdef0123456789abcdef' }, 1024)).toEqual({ kind: 'replaced' });
    expect(await objects.getPinned('t/a', { sha256: contentSha256(Buffer.from('other')) }, 1024)).toEqual({ kind: 'replaced' });
    expect(await objects.getPinned('t/none', {}, 1024)).toEqual({ kind: 'missing' });
    expect(await objects.getPinned('t/none', { eTag: '0123456789abcdef0123456789abcdef' }, 1024)).toMatchObject({ kind: expect.stringMatching(/^(missing|replaced)$/) });
  });

  it('refuses more than the limit, with the size the store declared', async () => {
    await objects.put('t/big', Buffer.alloc(2048), { contentType: 'image/png' });
    expect(await objects.getPinned('t/big', {}, 2047)).toEqual({ kind: 'too_large', size: 2048 });
    expect(await objects.getPinned('t/big', {}, 2048)).toMatchObject({ kind: 'ok' });
  });

  it('lists, checks, deletes one, many and a prefix; repeats are harmless', async () => {
    for (const key of ['t/p/1', 't/p/2', 't/p/3', 't/q/1']) await objects.put(key, bytes, { contentType: 'image/webp' });
    const listed: string[] = [];
    for await (const key of objects.list('t/p/')) listed.push(key);
    expect(listed.sort()).toEqual(['t/p/1', 't/p/2', 't/p/3']);
    expect(await objects.exists('t/q/1')).toBe(true);
    await objects.delete('t/q/1');
    await objects.delete('t/q/1');
    expect(await objects.exists('t/q/1')).toBe(false);
    await objects.deleteMany(['t/p/1', 't/none']);
    expect(await objects.deletePrefix('t/p/')).toBe(2);
    expect(await objects.deletePrefix('t/p/')).toBe(0);
    expect(await objects.exists('t/p/2')).toBe(false);
  });

  it('signs a GET of an object for a while, and is ready', async () => {
    const url = new URL(await objects.signedGetUrl('t/a', 300));
    expect(url.pathname).toMatch(/t\/a$/);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    await expect(objects.ready()).resolves.not.toThrow();
  });
});

describe('s3Objects on s3rver', () => {
  it('serves its signed GET: s3rver checks the signature', async () => {
    const objects = s3Objects(backend.s3, BUCKET);
    await objects.put('t/signed', Buffer.from('hello'), { contentType: 'text/plain' });
    const res = await fetch(await objects.signedGetUrl('t/signed', 60));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello');
  });
});

// s3rver answers InternalError when a listing goes past one page (1,000 keys): paging is checked on moto.
describe.skipIf(motoSkipped)(`s3Objects on moto's S3${motoSkipped ? ` (skipped: ${motoSkipped})` : ''}`, () => {
  it('lists and deletes a prefix past one page (ListObjectsV2 continuation, DeleteObjects in batches of 1,000)', async () => {
    const objects = s3Objects(motoS3, BUCKET);
    const keys = Array.from({ length: 1005 }, (_, i) => `paged/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((key) => objects.put(key, Buffer.from(key), { contentType: 'text/plain' })));
    }
    const listed: string[] = [];
    for await (const key of objects.list('paged/')) listed.push(key);
    expect(listed).toEqual(keys);
    expect(await objects.deletePrefix('paged/')).toBe(1005);
    expect(await objects.deletePrefix('paged/')).toBe(0);
  }, 120_000);

  it('gets 412 from a store that honours If-Match: a replaced object is never sent', async () => {
    const objects = s3Objects(motoS3, BUCKET);
    await objects.put('pinned', Buffer.from('first'), { contentType: 'text/plain' });
    await expect(motoS3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'pinned', IfMatch: '"0123456789abcdef0123456789abcdef"' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    expect(await objects.getPinned('pinned', { eTag: '0123456789abcdef0123456789abcdef' }, 100)).toEqual({ kind: 'replaced' });
  });
});

// s3rver ignores If-Match on GET (the ETag check after the read covers it there); S3 and MinIO
// answer 412, which is what spares them sending a replaced object. Here the SDK is the peer.
describe('s3Objects against S3 conditional reads', () => {
  const failure = (status: number, name: string) => new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status } });

  it('sends the pin as If-Match and takes 412 for replaced, 404 for missing, other failures as failures', async () => {
    const s3 = new S3Client({ region: 'us-east-1' });
    const mock = mockClient(s3);
    const objects = s3Objects(s3, BUCKET);
    mock.on(GetObjectCommand).rejectsOnce(failure(412, 'PreconditionFailed')).rejectsOnce(failure(404, 'NoSuchKey')).rejectsOnce(failure(503, 'SlowDown'));
    expect(await objects.getPinned('k', { eTag: 'abc' }, 10)).toEqual({ kind: 'replaced' });
    expect(mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({ Bucket: BUCKET, Key: 'k', IfMatch: '"abc"' });
    expect(await objects.getPinned('k', {}, 10)).toEqual({ kind: 'missing' });
    expect(mock.commandCalls(GetObjectCommand)[1]?.args[0].input).toEqual({ Bucket: BUCKET, Key: 'k' });
    await expect(objects.getPinned('k', {}, 10)).rejects.toThrow();
    mock.restore();
  });
});
