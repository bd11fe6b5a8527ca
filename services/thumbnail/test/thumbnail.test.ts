import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { defaultLimits, squareRegion } from '@avatar-pipeline/imaging';
import { garbageAfter, meanDifference, solidImage } from '@avatar-pipeline/imaging/hostile';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects, type ObjectStore } from '@avatar-pipeline/kit/objects';
import type { Service } from '@avatar-pipeline/kit/service';
import { memoryObjects } from '@avatar-pipeline/kit/testing';
import { EventType } from '@avatar-pipeline/kit/topology';
import { BUCKET, startTestBackends, type S3Backend } from '@avatar-pipeline/local';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CACHE_CONTROL, createThumbnailService, type ThumbnailConfig } from '../src/index.js';
import { approvals, approvedData, deliver, photo, stores, testConfig, webpChunks } from './helpers.js';

const logger = createLogger('thumbnail-test', 'silent');

describe('thumbnail service with s3rver', () => {
  let backends: S3Backend;
  let s3: S3Client;
  let objects: ObjectStore;
  let config: ThumbnailConfig;
  let service: Service;

  beforeAll(async () => {
    backends = await startTestBackends({ prefix: 'ap-thumbnail-', dynamo: false });
    s3 = backends.s3;
    objects = s3Objects(s3, BUCKET);
    config = testConfig({ AWS_ENDPOINT_URL_S3: backends.s3Server.endpoint });
    service = createThumbnailService({ stores, config, objects, logger, clock: () => new Date('2026-01-02T03:05:00Z') });
  });
  afterAll(async () => {
    await backends?.close();
  });

  /** Stores an upload as the presigned POST would and returns its approved event data (eTag bare, as in S3 events). */
  async function upload(playerId: string, body: Buffer, uploadId?: string) {
    const data = approvedData(playerId, 'pending', uploadId ? { uploadId } : {});
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: data.key, Body: body, ContentType: 'image/jpeg' }));
    return { ...data, eTag: (put.ETag ?? '').replace(/"/g, ''), sha256: createHash('sha256').update(body).digest('hex') };
  }

  /**
   * An MD5 collision as S3 reports it: other bytes under the key, the ETag unchanged. s3rver keeps
   * an object's ETag in a file beside its content, so replacing only the content does exactly that.
   */
  async function swapKeepingETag(key: string, body: Buffer) {
    const parts = key.split('/');
    await writeFile(join(backends.s3Directory, BUCKET, ...parts.slice(0, -1), `${parts.at(-1)}._S3rver_object`), body);
  }

  async function getObject(key: string) {
    const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return { body: Buffer.from(await res.Body!.transformToByteArray()), contentType: res.ContentType, cacheControl: res.CacheControl };
  }

  const exists = (key: string) => objects.exists(key);

  const avatarKeys = (playerId: string, uploadId: string) => ({
    '64': `avatars/${playerId}/${uploadId}/64.webp`,
    '128': `avatars/${playerId}/${uploadId}/128.webp`,
    '256': `avatars/${playerId}/${uploadId}/256.webp`,
    full: `avatars/${playerId}/${uploadId}/full.webp`,
  });

  it('renders an EXIF-rotated phone photo into oriented, metadata-free WebP avatars and deletes the original', async () => {
    const original = await photo('cups-exif-rotated.jpg');
    const data = await upload('player-1', original);
    const { status, reply } = await deliver(service, data);
    expect(status).toBe(200);

    const objects = avatarKeys('player-1', data.uploadId);
    expect(reply).toMatchObject({
      id: `${data.uploadId}.thumbnailed`,
      type: EventType.thumbnailed,
      source: '/avatar-pipeline/thumbnail',
      subject: data.key,
      data: { playerId: 'player-1', uploadId: data.uploadId, uploadedAt: data.uploadedAt, bucket: BUCKET, objects },
    });
    expect(Object.keys((reply?.data as { objects: object }).objects).sort()).toEqual(['128', '256', '64', 'full']);

    for (const [name, key] of Object.entries(objects)) {
      const object = await getObject(key);
      expect(object.contentType).toBe('image/webp');
      expect(object.cacheControl).toBe(CACHE_CONTROL);
      expect(object.body.toString('latin1', 0, 4)).toBe('RIFF');
      const meta = await sharp(object.body).metadata();
      expect(meta.format).toBe('webp');
      expect(meta.exif).toBeUndefined();
      expect(meta.xmp).toBeUndefined();
      expect(meta.icc).toBeUndefined();
      expect(meta.orientation).toBeUndefined();
      // No metadata chunk at all, and no trace of the camera or the position in the bytes.
      expect(webpChunks(object.body).filter((id) => !['VP8 ', 'VP8L', 'VP8X', 'ALPH'].includes(id))).toEqual([]);
      expect(object.body.includes('FixtureCam')).toBe(false);
      expect(object.body.includes('GPS')).toBe(false);
      if (name === 'full') {
        // Stored as 750x1200 portrait with Orientation 6: the upright photo is landscape.
        expect([meta.width, meta.height]).toEqual([1024, 640]);
      } else {
        expect([meta.width, meta.height]).toEqual([Number(name), Number(name)]);
      }
    }

    // Turned the right way, not just to the right shape: the pixels match the upright photo.
    const full = await getObject(objects.full);
    const upright = await sharp(original).autoOrient().resize(1024).raw().toBuffer();
    const upsideDown = await sharp(original).autoOrient().rotate(180).resize(1024).raw().toBuffer();
    const ours = await sharp(full.body).raw().toBuffer();
    expect(meanDifference(ours, upright)).toBeLessThan(6);
    expect(meanDifference(ours, upsideDown)).toBeGreaterThan(20);

    expect(await exists(data.key)).toBe(false);
  });

  it.each([
    ['leaf.jpg', [960, 600]],
    ['path.png', [800, 500]],
    ['autumn.webp', [900, 563]],
  ])('renders %s (the full rendition is never enlarged)', async (file, fullSize) => {
    const data = await upload('player-2', await photo(file));
    const { status } = await deliver(service, data);
    expect(status).toBe(200);
    for (const [name, key] of Object.entries(avatarKeys('player-2', data.uploadId))) {
      const meta = await sharp((await getObject(key)).body).metadata();
      expect(meta.format).toBe('webp');
      expect([meta.width, meta.height]).toEqual(name === 'full' ? fullSize : [Number(name), Number(name)]);
    }
    expect(await exists(data.key)).toBe(false);
  });

  it('answers a redelivery with the same reply once the original is gone, and re-renders identical bytes while it is there', async () => {
    const original = await photo('leaf.jpg');
    const data = await upload('player-3', original);
    const first = await deliver(service, data);
    expect(first.status).toBe(200);
    const objects = avatarKeys('player-3', data.uploadId);
    const before = await Promise.all(Object.values(objects).map(async (key) => (await getObject(key)).body));

    const again = await deliver(service, data);
    expect(again.status).toBe(200);
    expect(again.reply?.id).toBe(first.reply?.id);
    expect(again.reply?.data).toEqual(first.reply?.data);

    // A redelivery that raced the delete: the original is back (same bytes, same ETag).
    await upload('player-3', original, data.uploadId);
    const third = await deliver(service, data);
    expect(third.status).toBe(200);
    expect(third.reply?.data).toEqual(first.reply?.data);
    const after = await Promise.all(Object.values(objects).map(async (key) => (await getObject(key)).body));
    after.forEach((body, i) => expect(body.equals(before[i]!)).toBe(true));
    expect(await exists(data.key)).toBe(false);

    const metrics = await (await service.app.request('/metrics')).text();
    expect(metrics).toMatch(/avatarpipeline_thumbnails_rendered_total\{outcome="reused",service="thumbnail"\} [1-9]/);
    expect(metrics).toMatch(/avatarpipeline_thumbnails_rendered_total\{outcome="rendered",service="thumbnail"\} [1-9]/);
    expect(metrics).toMatch(/avatarpipeline_thumbnail_bytes_written_total\{service="thumbnail"\} [1-9]\d+/);
    expect(metrics).toMatch(/avatarpipeline_thumbnail_duration_seconds_count\{service="thumbnail"\} [1-9]/);
  });

  it('fails permanently when the original is gone and the avatars were never written', async () => {
    const data = await upload('player-4', await photo('leaf.jpg'));
    await objects.delete(data.key);
    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('upload_missing');
  });

  it('fails permanently when the object was replaced after moderation, rendering nothing', async () => {
    const data = await upload('player-5', await photo('leaf.jpg'));
    // The presigned POST used again: other bytes, another ETag (s3rver ignores If-Match, so the hash decides).
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: data.key, Body: await photo('cups-exif-rotated.jpg'), ContentType: 'image/jpeg' }));
    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('object_replaced');
    for (const key of Object.values(avatarKeys('player-5', data.uploadId))) expect(await exists(key)).toBe(false);
  });

  it('ignores an approved event for bytes moderate never approved (a forged event): no reply, nothing rendered, the object left alone', async () => {
    const data = await upload('player-12', await photo('leaf.jpg'));
    const before = await (await service.app.request('/metrics')).text();
    const { status, reply } = await deliver(service, data, { approved: false });
    expect(status).toBe(202);
    expect(reply).toBeUndefined();
    for (const key of Object.values(avatarKeys('player-12', data.uploadId))) expect(await exists(key)).toBe(false);
    expect(await exists(data.key)).toBe(true);
    // Approved, but other bytes: the same.
    approvals.hashes.set(data.uploadId, createHash('sha256').update('other bytes').digest('hex'));
    expect((await deliver(service, data, { approved: false })).status).toBe(202);
    for (const key of Object.values(avatarKeys('player-12', data.uploadId))) expect(await exists(key)).toBe(false);
    const unapproved = (text: string) => Number(/avatarpipeline_thumbnails_rendered_total\{outcome="unapproved"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    expect(unapproved(await (await service.app.request('/metrics')).text()) - unapproved(before)).toBe(2);
  });

  it('decides an unapproved event on the approval alone, whatever the overlapping download found', async () => {
    const data = await upload('player-13', await photo('leaf.jpg'));
    await objects.delete(data.key);
    // Approved, this would be a permanent failure (upload_missing); not approved, it is ignored.
    const { status, reply } = await deliver(service, data, { approved: false });
    expect(status).toBe(202);
    expect(reply).toBeUndefined();
    for (const key of Object.values(avatarKeys('player-13', data.uploadId))) expect(await exists(key)).toBe(false);
  });

  it('never renders bytes other than the moderated ones, even under the moderated ETag (an MD5 collision)', async () => {
    const data = await upload('player-11', await photo('leaf.jpg'));
    const swapped = await photo('cups-exif-rotated.jpg');
    await swapKeepingETag(data.key, swapped);
    const stored = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: data.key }));
    expect(stored.ETag).toBe(`"${data.eTag}"`);
    expect(Buffer.from(await stored.Body!.transformToByteArray()).equals(swapped)).toBe(true);

    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('object_replaced');
    for (const key of Object.values(avatarKeys('player-11', data.uploadId))) expect(await exists(key)).toBe(false);
  });

  it('answers a redelivery with the same reply when a later write holds the key after rendering, and deletes that write', async () => {
    const data = await upload('player-12', await photo('leaf.jpg'));
    const first = await deliver(service, data);
    expect(first.status).toBe(200);
    const objects = avatarKeys('player-12', data.uploadId);
    const before = await Promise.all(Object.values(objects).map(async (key) => (await getObject(key)).body));

    // The ticket is used again after the original was rendered and deleted; then the approved event comes again.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: data.key, Body: await photo('cups-exif-rotated.jpg'), ContentType: 'image/jpeg' }));
    const again = await deliver(service, data);
    expect(again.status).toBe(200);
    expect(again.reply?.data).toEqual(first.reply?.data);
    const after = await Promise.all(Object.values(objects).map(async (key) => (await getObject(key)).body));
    after.forEach((body, i) => expect(body.equals(before[i]!)).toBe(true));
    expect(await exists(data.key)).toBe(false);
  });

  it('fails permanently on an object that does not decode', async () => {
    const data = await upload('player-6', garbageAfter(await photo('leaf.jpg')));
    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('undecodable');
    expect(await exists(avatarKeys('player-6', data.uploadId)['64'])).toBe(false);
  });

  it('refuses an event naming an object that is not the upload', async () => {
    const victim = await upload('player-7', await photo('leaf.jpg'));
    const data = await upload('player-8', await photo('leaf.jpg'));
    const { status, error } = await deliver(service, { ...data, key: victim.key, eTag: victim.eTag });
    expect(status).toBe(422);
    expect(error?.code).toBe('foreign_object');
    expect(await exists(victim.key)).toBe(true);
  });

  it('refuses an upload over AVATAR_MAX_BYTES without rendering it', async () => {
    const small = createThumbnailService({ stores, config: { ...config, AVATAR_MAX_BYTES: 10_000 }, objects, logger });
    const data = await upload('player-9', await photo('leaf.jpg'));
    const { status, error } = await deliver(small, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('too_large');
    expect(await exists(data.key)).toBe(true);
  });

  it('refuses an image beyond IMAGE_MAX_ASPECT (4:1) without rendering it', async () => {
    const data = await upload('player-13', await solidImage(640, 128, 'png'));
    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error).toMatchObject({ code: 'aspect_ratio', message: expect.stringContaining('640x128') });
    expect(await exists(avatarKeys('player-13', data.uploadId)['64'])).toBe(false);
  });

  it('crops squares by attention or from the centre', async () => {
    const original = await photo('cups-exif-rotated.jpg');
    const squares: Buffer[] = [];
    for (const crop of ['attention', 'centre'] as const) {
      const cropping = createThumbnailService({ stores, config: { ...config, THUMBNAIL_CROP: crop }, objects, logger });
      const data = await upload(`player-${crop}`, original);
      expect((await deliver(cropping, data)).status).toBe(200);
      const square = (await getObject(avatarKeys(`player-${crop}`, data.uploadId)['256'])).body;
      const meta = await sharp(square).metadata();
      expect([meta.width, meta.height]).toEqual([256, 256]);
      squares.push(square);
    }
    // The 1024x640 photo's salient region is off-centre, so the two strategies cut differently.
    expect(squares[0]!.equals(squares[1]!)).toBe(false);
  });

  it('renders the square the approved event names, and without one the square moderate used to classify', async () => {
    const original = await photo('cups-exif-rotated.jpg');
    const dims = { width: 1200, height: 750 };
    const at = async (playerId: string, square?: { left: number; top: number; size: number }) => {
      const data = await upload(playerId, original);
      expect((await deliver(service, square ? { ...data, square } : data)).status).toBe(200);
      return sharp((await getObject(avatarKeys(playerId, data.uploadId)['256'])).body).resize(32, 32).raw().toBuffer();
    };
    const cut = (left: number) => sharp(original).autoOrient().extract({ left, top: 0, width: 750, height: 750 }).resize(32, 32).raw().toBuffer();
    const legacy = await squareRegion(original, dims, 'attention', defaultLimits);
    expect(legacy.left).toBeGreaterThan(300);
    const [left, middle] = [await cut(0), await cut(legacy.left)];
    // The two cuts differ far more than WebP's loss: the comparison tells them apart.
    const apart = meanDifference(left, middle);
    expect(apart).toBeGreaterThan(20);
    const named = await at('player-square-named', { left: 0, top: 0, size: 750 });
    expect(meanDifference(named, left)).toBeLessThan(apart / 3);
    const unnamed = await at('player-square-unnamed');
    expect(meanDifference(unnamed, middle)).toBeLessThan(apart / 3);
  });

  it('refuses a square that is not one of the image, rendering nothing', async () => {
    for (const [n, square] of [
      [1, { left: 500, top: 0, size: 750 }],
      [2, { left: 0, top: 0, size: 320 }],
    ] as const) {
      const data = await upload(`player-bad-square-${n}`, await photo('cups-exif-rotated.jpg'));
      const { status, error } = await deliver(service, { ...data, square });
      expect(status).toBe(422);
      expect(error?.code).toBe('square_mismatch');
      expect(await exists(avatarKeys(`player-bad-square-${n}`, data.uploadId)['64'])).toBe(false);
    }
  });

  it('is ready when the bucket and the table answer', async () => {
    const res = await service.app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', checks: { s3: 'ok', dynamodb: 'ok' } });
  });

  it('rejects events that do not validate', async () => {
    const data = approvedData('player-10', 'abc');
    const { status, error } = await deliver(service, { ...data, uploadId: 'not-a-uuid' });
    expect(status).toBe(400);
    expect(error?.code).toBe('invalid_event_data');
  });
});

describe('thumbnail against a store that fails or holds other bytes', () => {
  it('asks for the moderated ETag and SHA-256, and writes and deletes nothing when the key holds a later write', async () => {
    const objects = memoryObjects(BUCKET);
    const data = approvedData('player-1', 'd41d8cd98f00b204e9800998ecf8427e');
    // Another ETag under the key: what S3 answers with a failed If-Match (412).
    await objects.put(data.key, Buffer.from('a later write'), { contentType: 'image/jpeg' });
    const getPinned = vi.spyOn(objects, 'getPinned');
    const put = vi.spyOn(objects, 'put');
    const remove = vi.spyOn(objects, 'delete');
    const config = testConfig();
    const service = createThumbnailService({ stores, config, objects, logger });
    const { status, error } = await deliver(service, data);
    expect(status).toBe(422);
    expect(error?.code).toBe('object_replaced');
    expect(getPinned).toHaveBeenCalledWith(data.key, { eTag: data.eTag, sha256: data.sha256 }, config.AVATAR_MAX_BYTES);
    expect(put).not.toHaveBeenCalled();
    expect(remove).not.toHaveBeenCalled();
  });

  it('is not ready when the bucket refuses access', async () => {
    const forbidden = Object.assign(new Error('access denied'), { name: 'Forbidden', $metadata: { httpStatusCode: 403 } });
    const objects = { ...memoryObjects(BUCKET), ready: () => Promise.reject(forbidden) };
    const service = createThumbnailService({ stores, config: testConfig(), objects, logger });
    const res = await service.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', checks: { s3: 'failing', dynamodb: 'ok' } });
  });

  it('retries (500) when S3 fails transiently', async () => {
    const slowDown = Object.assign(new Error('slow down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
    const objects = { ...memoryObjects(BUCKET), getPinned: () => Promise.reject(slowDown) };
    const service = createThumbnailService({ stores, config: testConfig(), objects, logger });
    const { status } = await deliver(service, approvedData('player-1', 'abc'));
    expect(status).toBe(500);
  });
});
