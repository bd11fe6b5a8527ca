import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import sharp from 'sharp';
import { hiddenInAlpha, meanDifference, pngBomb, solidImage, strip, textFile, tileInStrip, truncated } from '@avatar-pipeline/imaging/hostile';
import { BanList } from '@avatar-pipeline/kit/bans';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects, type ObjectStore } from '@avatar-pipeline/kit/objects';
import type { Service } from '@avatar-pipeline/kit/service';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { BUCKET, TABLE, startTestBackends, type TestBackends } from '@avatar-pipeline/local';
import { createModerateService, moderateEnv, moderateStores, type ModerateConfig, type ModerateDeps } from '../src/index.js';
import { deliver, detailShare, fakeProvider, objectCreated, photo, spread } from './helpers.js';

const logger = createLogger('moderate-test', 'silent');
const now = new Date('2026-01-02T03:05:00Z');

describe('moderate event handling against s3rver and dynalite', () => {
  let backends: TestBackends;
  let s3: S3Client;
  let doc: DynamoDBDocumentClient;
  let objects: ObjectStore;
  let uploads: UploadStore;
  let config: ModerateConfig;
  let provider: ReturnType<typeof fakeProvider>;
  let service: Service;
  let bans: BanList;

  beforeAll(async () => {
    backends = await startTestBackends({ prefix: 'ap-moderate-' });
    ({ s3, doc } = backends);
    objects = s3Objects(s3, BUCKET);
    uploads = new UploadStore(doc, TABLE);
    bans = new BanList(doc, TABLE);
    config = loadConfig(moderateEnv, { AWS_ENDPOINT_URL_S3: backends.s3Server.endpoint, AWS_ENDPOINT_URL_DYNAMODB: backends.dynamoServer.endpoint });
  });
  // Every rejection by the policy bans its picture: lift them, so the next test may use the same photos.
  afterEach(async () => {
    for (let page = await bans.list({ limit: 100 }); ; ) {
      for (const ban of page.items) await bans.remove(ban.id);
      if (page.cursor === undefined) break;
      page = await bans.list({ limit: 100, cursor: page.cursor });
    }
  });
  beforeEach(() => {
    provider = fakeProvider();
    service = moderateService();
  });
  afterAll(async () => {
    await backends?.close();
  });

  /** The service on the test backends, its clock at `clock`; `deps` replaces any of its parts. */
  function moderateService(deps: Partial<ModerateDeps> = {}, clock = () => now) {
    return createModerateService({ config, objects, stores: moderateStores(doc, TABLE, clock), provider, logger, clock, ...deps });
  }

  /** Presign's part (the pending record) and the player's (the object); returns the event S3 would send. */
  async function upload(body: Buffer, contentType: string, options: { maxBytes?: number; playerId?: string } = {}) {
    const playerId = options.playerId ?? 'player-1';
    const uploadId = uuidv7();
    const key = uploadKey(playerId, uploadId);
    await uploads.createPending({ playerId, uploadId, contentType, maxBytes: options.maxBytes ?? 5 * 1024 * 1024 });
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: contentType }));
    return { playerId, uploadId, key, event: objectCreated(key, put.ETag?.replace(/"/g, '')) };
  }

  const exists = (key: string) => objects.exists(key);

  it.each([
    ['leaf.jpg', 'image/jpeg', 960, 600],
    ['cups-exif-rotated.jpg', 'image/jpeg', 1200, 750],
    ['path.png', 'image/png', 800, 500],
    ['autumn.webp', 'image/webp', 900, 563],
  ])('approves %s: the reply names the sniffed type, displayed size and hash of the bytes; the record stays processing', async (name, contentType, width, height) => {
    const body = await photo(name);
    const { playerId, uploadId, key, event } = await upload(body, contentType);
    const res = await deliver(service, event);
    const sha256 = createHash('sha256').update(body).digest('hex');

    expect(res.status).toBe(200);
    expect(res.reply).toMatchObject({
      id: `${uploadId}.approved`,
      type: EventType.approved,
      source: '/avatar-pipeline/moderate',
      subject: key,
      data: {
        playerId,
        uploadId,
        uploadedAt: '2026-01-02T03:04:05.000Z',
        bucket: BUCKET,
        key,
        eTag: (event.data as { object: { eTag: string } }).object.eTag,
        sha256,
        contentType,
        width,
        height,
        square: { top: 0, size: height, left: expect.any(Number) },
        provider: 'nsfwjs',
        labels: [],
      },
    });
    const { square } = res.reply!.data as { square: { left: number; size: number } };
    expect(square.left + square.size).toBeLessThanOrEqual(width);
    expect(provider.calls).toHaveLength(1);
    expect(provider.calls[0]).toMatchObject({ bucket: BUCKET, key, format: contentType.slice(6), width, height });
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'processing', sha256 });
    expect(await exists(key)).toBe(true);
    // Its owner and fingerprint, for a moderator who may ban the avatar it becomes.
    expect(await new UploadOwners(doc, TABLE).get(uploadId)).toMatchObject({ uploadId, playerId, fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it.each([
    ['a truncated JPEG', async () => truncated(await photo('leaf.jpg')), 'image/jpeg', 'corrupt'],
    ['a text file declared as JPEG', async () => textFile, 'image/jpeg', 'unsupported_format'],
    ['a PNG decompression bomb', async () => pngBomb(), 'image/png', 'too_many_pixels'],
    ['a JPEG declared as PNG', async () => photo('leaf.jpg'), 'image/png', 'format_mismatch'],
    ['a 5:1 panorama', async () => solidImage(640, 128, 'png'), 'image/png', 'aspect_ratio'],
  ])('rejects %s before any model: object deleted, record rejected with the reason', async (_, make, contentType, code) => {
    const { playerId, uploadId, key, event } = await upload(await make(), contentType);
    const res = await deliver(service, event);

    expect(res.status).toBe(200);
    expect(res.reply).toMatchObject({
      id: `${uploadId}.rejected`,
      type: EventType.rejected,
      subject: key,
      data: { playerId, uploadId, uploadedAt: '2026-01-02T03:04:05.000Z', reason: { code } },
    });
    expect(provider.calls).toHaveLength(0);
    expect(await exists(key)).toBe(false);
    const record = await uploads.get(playerId, uploadId);
    expect(record).toMatchObject({ status: 'rejected', reason: { code } });
    expect(record?.reason?.message).toBeTruthy();
    const metrics = await (await service.app.request('/metrics')).text();
    expect(metrics).toContain(`avatarpipeline_moderation_check_failures_total{code="${code}",service="moderate"} 1`);
    expect(metrics).toContain('avatarpipeline_moderation_decisions_total{outcome="invalid",provider="nsfwjs",service="moderate"} 1');
  });

  it('refuses an object over the declared size from its declared length, without reading it', async () => {
    const body = await photo('leaf.jpg');
    const { playerId, uploadId, key, event } = await upload(body, 'image/jpeg', { maxBytes: body.length - 1 });
    const res = await deliver(service, event);
    expect(res.reply?.data).toMatchObject({ reason: { code: 'too_large', message: `the file is ${body.length} bytes; the limit is ${body.length - 1}` } });
    expect((await uploads.get(playerId, uploadId))?.status).toBe('rejected');
    expect(await exists(key)).toBe(false);
    expect(provider.calls).toHaveLength(0);
  });

  it('rejects by policy with the deciding labels, and answers a duplicate with the same reply and no second write', async () => {
    provider.answer = async () => [
      { name: 'Explicit', confidence: 97.5 },
      { name: 'Alcohol', confidence: 88 },
    ];
    const { playerId, uploadId, key, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    const first = await deliver(service, event);
    expect(first.reply).toMatchObject({
      id: `${uploadId}.rejected`,
      data: { reason: { code: 'moderation', message: 'the image was refused by content moderation: Explicit (97.5%)' }, labels: [{ name: 'Explicit', confidence: 97.5 }] },
    });
    const record = await uploads.get(playerId, uploadId);
    expect(record).toMatchObject({ status: 'rejected', reason: { code: 'moderation' }, labels: [{ name: 'Explicit', confidence: 97.5 }] });
    expect(await exists(key)).toBe(false);
    const metrics = await (await service.app.request('/metrics')).text();
    expect(metrics).toContain('avatarpipeline_moderation_decisions_total{outcome="rejected",provider="nsfwjs",service="moderate"} 1');
    expect(metrics).toContain('avatarpipeline_moderation_duration_seconds_count{service="moderate",provider="nsfwjs"} 1');

    // The broker redelivers the same event (its first reply was lost): same reply, no new work or write.
    const later = moderateService({}, () => new Date('2026-01-02T04:00:00Z'));
    const again = await deliver(later, event);
    expect(again.status).toBe(200);
    expect(again.body).toBe(first.body);
    expect(again.reply?.id).toBe(first.reply?.id);
    expect(again.reply?.time).toBe(first.reply?.time);
    expect(provider.calls).toHaveLength(1);
    expect(await uploads.get(playerId, uploadId)).toEqual(record);
  });

  it('answers a duplicate approval with the same reply without moderating again', async () => {
    const { event, uploadId } = await upload(await photo('path.png'), 'image/png');
    const first = await deliver(service, event);
    const again = await deliver(service, event);
    expect(again.status).toBe(200);
    expect(again.body).toBe(first.body);
    expect(again.reply?.id).toBe(`${uploadId}.approved`);
    expect(provider.calls).toHaveLength(1);
  });

  it('gives a different event for a rejected upload the same rejection, deleting what the key holds now', async () => {
    const { playerId, uploadId, key, event } = await upload(truncated(await photo('leaf.jpg')), 'image/jpeg');
    const first = await deliver(service, event);
    expect(first.reply?.data).toMatchObject({ reason: { code: 'corrupt' } });

    // The player reuses the presigned POST: a new write, a new event.
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await photo('leaf.jpg'), ContentType: 'image/jpeg' }));
    const res = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
    expect(res.status).toBe(200);
    expect(res.reply).toMatchObject({ id: `${uploadId}.rejected`, data: { reason: { code: 'corrupt' } } });
    expect(provider.calls).toHaveLength(0);
    expect(await exists(key)).toBe(false);
    expect((await uploads.get(playerId, uploadId))?.status).toBe('rejected');
  });

  it('does no work and sends no reply for a new write to an upload that is already ready', async () => {
    const { playerId, uploadId, key } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    await uploads.finish(playerId, uploadId, 'ready');
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await photo('path.png'), ContentType: 'image/png' }));
    const res = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
    expect(res.status).toBe(202);
    expect(provider.calls).toHaveLength(0);
    expect(await exists(key)).toBe(false);
    expect((await uploads.get(playerId, uploadId))?.status).toBe('ready');
  });

  it('deletes and ignores a late upload for a ticket the reconciler expired: no moderation, no reply, still expired', async () => {
    const playerId = 'player-late';
    const uploadId = uuidv7();
    const key = uploadKey(playerId, uploadId);
    await uploads.createPending({ playerId, uploadId, contentType: 'image/jpeg', maxBytes: 5 * 1024 * 1024, ticketExpiresAt: '2026-01-02T03:00:00Z' });
    const reason = { code: 'expired', message: 'too late' };
    expect((await uploads.endOverdue(playerId, uploadId, 'pending', 'expired', new Date('2026-01-02T04:00:00Z'), reason)).changed).toBe(true);
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await photo('leaf.jpg'), ContentType: 'image/jpeg' }));
    const res = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
    expect(res.status).toBe(202);
    expect(provider.calls).toHaveLength(0);
    expect(await exists(key)).toBe(false);
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'expired', reason });
  });

  it('never moderates a later write over approved bytes: no reply, no decision, the approval stands', async () => {
    const { playerId, uploadId, key, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    const approved = await deliver(service, event);
    expect(approved.reply?.id).toBe(`${uploadId}.approved`);
    const { sha256 } = approved.reply?.data as { sha256: string };

    // The presigned POST used again before thumbnail read the original: other bytes, fine or not, under the same key.
    for (const later of [await photo('cups-exif-rotated.jpg'), truncated(await photo('leaf.jpg'))]) {
      const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: later, ContentType: 'image/jpeg' }));
      const res = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
      expect(res.status).toBe(202);
      // Left where it is: thumbnail refuses bytes without the approved hash, and the upload's end deletes them.
      expect(await exists(key)).toBe(true);
    }
    expect(provider.calls).toHaveLength(1);
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'processing', sha256 });
  });

  it('takes a later write whose object is already gone as no failure once bytes were approved', async () => {
    const { playerId, uploadId, key, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    expect((await deliver(service, event)).reply?.id).toBe(`${uploadId}.approved`);
    // A retried POST landed while thumbnail rendered; thumbnail then deleted what the key held. Its event comes late.
    await objects.delete(key);
    const res = await deliver(service, objectCreated(key, 'f'.repeat(32)));
    expect(res.status).toBe(202);
    expect((await uploads.get(playerId, uploadId))?.status).toBe('processing');
  });

  it('does not let a rejection of a later write undo an approval that won the race', async () => {
    const first = await photo('leaf.jpg');
    const later = await photo('cups-exif-rotated.jpg');
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    // The first call (the later bytes) waits, then refuses them; any other is approved at once.
    provider.answer = async () => {
      if (provider.calls.length > 1) return [];
      await released;
      return [{ name: 'Explicit', confidence: 99 }];
    };
    // The later bytes are being classified when the first ones arrive under the same key and are approved.
    const { playerId, uploadId, key, event } = await upload(later, 'image/jpeg');
    const slow = deliver(service, event);
    await vi.waitFor(() => expect(provider.calls).toHaveLength(1));
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: first, ContentType: 'image/jpeg' }));
    const approved = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
    expect(approved.reply?.id).toBe(`${uploadId}.approved`);
    release();

    expect((await slow).status).toBe(202);
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'processing', sha256: createHash('sha256').update(first).digest('hex') });
    expect(await exists(key)).toBe(true);
  });

  it('deletes an object that has no upload record and answers 202', async () => {
    const key = uploadKey('player-2', uuidv7());
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await photo('leaf.jpg') }));
    const res = await deliver(service, objectCreated(key, put.ETag?.replace(/"/g, '')));
    expect(res.status).toBe(202);
    expect(await exists(key)).toBe(false);
  });

  it('deletes anything parked under uploads/ with a key presign never issues, and leaves other prefixes alone', async () => {
    for (const key of ['uploads/junk.txt', 'uploads/player-1/not-a-uuid', 'uploads/../x/y']) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: textFile }));
      const res = await deliver(service, objectCreated(key, undefined));
      expect(res.status, key).toBe(202);
      expect(await exists(key), key).toBe(false);
    }
    const avatar = 'avatars/player-1/x/64.webp';
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: avatar, Body: textFile }));
    expect((await deliver(service, objectCreated(avatar, undefined))).status).toBe(202);
    expect(await exists(avatar)).toBe(true);
  });

  it('answers 500 when the provider fails, so the broker retries; the retry succeeds', async () => {
    provider.answer = async () => {
      throw new Error('model crashed');
    };
    const { playerId, uploadId, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    const failed = await deliver(service, event);
    expect(failed.status).toBe(500);
    expect(failed.error?.code).toBe('event_failed');
    expect((await uploads.get(playerId, uploadId))?.status).toBe('processing');

    provider.answer = async () => [];
    const retried = await deliver(service, event);
    expect(retried.status).toBe(200);
    expect(retried.reply?.id).toBe(`${uploadId}.approved`);
  });

  it('answers 500 when marking the upload processing fails, whatever the overlapping download did; the retry succeeds', async () => {
    const { playerId, uploadId, key, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    // The table refuses the pending -> processing write once, while S3 answers the download.
    const stores = moderateStores(doc, TABLE, () => now);
    const throttled = Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
    const markProcessing = vi.spyOn(stores.uploads, 'markProcessing').mockRejectedValueOnce(throttled);
    const failed = await deliver(moderateService({ stores }), event);
    expect(failed.status).toBe(500);
    expect(markProcessing).toHaveBeenCalledTimes(1);
    expect(provider.calls).toHaveLength(0);
    expect((await uploads.get(playerId, uploadId))?.status).toBe('pending');
    expect(await exists(key)).toBe(true);

    const retried = await deliver(service, event);
    expect(retried.reply?.id).toBe(`${uploadId}.approved`);
  });

  it('sends an upload whose object vanished to the dead-letter path (422)', async () => {
    const playerId = 'player-3';
    const uploadId = uuidv7();
    await uploads.createPending({ playerId, uploadId, contentType: 'image/jpeg', maxBytes: 1000 });
    const res = await deliver(service, objectCreated(uploadKey(playerId, uploadId), 'abc'));
    expect(res.status).toBe(422);
    expect(res.error?.code).toBe('object_missing');
  });

  it('moderates an event without an eTag, naming in the reply the ETag of the bytes it read', async () => {
    const { uploadId, key } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    const res = await deliver(service, objectCreated(key, undefined));
    expect(res.reply).toMatchObject({ id: `${uploadId}.approved`, data: { eTag: expect.stringMatching(/^[0-9a-f]{32}$/) } });
  });

  it('refuses events that are not S3 object-created data', async () => {
    const res = await deliver(service, { ...objectCreated('uploads/p/x', 'e'), data: { bucket: {} } });
    expect(res.status).toBe(400);
    expect(res.error?.code).toBe('invalid_event_data');
  });

  it('reports ready when DynamoDB and S3 answer', async () => {
    const res = await service.app.request('/readyz');
    expect(await res.json()).toEqual({ status: 'ok', checks: { dynamodb: 'ok', s3: 'ok' } });
  });

  it('drops an event whose object was replaced since (412) without touching the upload', async () => {
    const { playerId, uploadId, key, event } = await upload(await photo('leaf.jpg'), 'image/jpeg');
    // The store answers as S3 does when the object changed since the event (a failed If-Match).
    const getPinned = vi.fn<ObjectStore['getPinned']>(async () => ({ kind: 'replaced' }));
    const stale = moderateService({ objects: { ...objects, getPinned } });
    const res = await deliver(stale, event);
    expect(res.status).toBe(202);
    expect(getPinned).toHaveBeenCalledWith(key, { eTag: (event.data as { object: { eTag: string } }).object.eTag }, expect.any(Number));
    expect(provider.calls).toHaveLength(0);
    expect(await exists(key)).toBe(true);
    expect((await uploads.get(playerId, uploadId))?.status).toBe('processing');
  });

  const explicit = [{ name: 'Explicit', confidence: 99 }];

  it('shows the model a transparent image on black and on white: a photo hidden in the alpha channel is rejected', async () => {
    const leaf = await photo('leaf.jpg');
    // A model that flags whatever it can see: any view that is not blank.
    provider.answer = async (input) => (input.views.some((view) => spread(view) > 5) ? explicit : []);
    const { uploadId, event } = await upload(await hiddenInAlpha(leaf), 'image/png');
    const res = await deliver(service, event);
    expect(res.reply).toMatchObject({ id: `${uploadId}.rejected`, data: { reason: { code: 'moderation' } } });

    const views = provider.calls[0]!.views;
    expect(views.map((view) => `${view.region} on ${view.background}`)).toEqual(['whole on black', 'whole on white', 'square on black', 'square on white']);
    // Flattened onto white, all a model used to see, the image is blank; on black it is the photograph.
    const [onBlack, onWhite] = views;
    expect(spread(onWhite!)).toBeLessThan(1);
    const photograph = await sharp(leaf).greyscale().resize(224, 224, { fit: 'fill' }).raw().toBuffer();
    expect(meanDifference(onBlack!.pixels.data.filter((_, i) => i % 3 === 0), photograph)).toBeLessThan(8);
  });

  it('shows the model the square the avatars show: a strip with one offending tile is rejected', async () => {
    // A model that flags a view mostly made of the tile: the whole strip, a quarter tile, passes.
    provider.answer = async (input) => (input.views.some((view) => detailShare(view) > 0.5) ? explicit : []);
    const input = await tileInStrip();
    const { uploadId, event } = await upload(input, 'image/png');
    const res = await deliver(service, event);
    expect(res.reply).toMatchObject({ id: `${uploadId}.rejected`, data: { reason: { code: 'moderation' } } });

    const views = provider.calls[0]!.views;
    expect(views.map((view) => `${view.region} on ${view.background}`)).toEqual(['whole on none', 'square on none']);
    expect(detailShare(views[0]!)).toBeLessThan(0.3);
    expect(detailShare(views[1]!)).toBeGreaterThan(0.95);
    const square = await sharp(input).extract({ left: strip.tileLeft, top: 0, width: strip.height, height: strip.height }).resize(224, 224, { fit: 'fill' }).raw().toBuffer();
    expect(meanDifference(views[1]!.pixels.data, square)).toBeLessThan(3);
  });

  it('names in the approved event the square the model saw, for thumbnail to render: the strip\'s one detailed tile', async () => {
    const input = await tileInStrip();
    const { uploadId, event } = await upload(input, 'image/png');
    const res = await deliver(service, event);
    expect(res.reply).toMatchObject({ id: `${uploadId}.approved`, data: { square: { left: strip.tileLeft, top: 0, size: strip.height } } });
    const views = provider.calls[0]!.views;
    expect(views[1]!.region).toBe('square');
    const square = await sharp(input).extract({ left: strip.tileLeft, top: 0, width: strip.height, height: strip.height }).resize(224, 224, { fit: 'fill' }).raw().toBuffer();
    expect(meanDifference(views[1]!.pixels.data, square)).toBeLessThan(3);
  });

  describe('fingerprints, bans and the review band', () => {
    it('bans the picture of a policy rejection; the same picture resized to 90% and recompressed is then rejected `banned` without the model', async () => {
      provider.answer = async () => [{ name: 'Explicit', confidence: 97.5 }];
      const original = await photo('leaf.jpg');
      const first = await upload(original, 'image/jpeg');
      expect((await deliver(service, first.event)).reply).toMatchObject({ data: { reason: { code: 'moderation' } } });
      const [banned, ...others] = (await bans.list({ limit: 10 })).items;
      expect(others).toEqual([]);
      expect(banned).toMatchObject({ fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/), uploadId: first.uploadId, reason: 'moderation', by: 'moderate' });
      // A rejected picture's owner is not kept: only uploads that may become an avatar need it.
      expect(await new UploadOwners(doc, TABLE).get(first.uploadId)).toBeUndefined();

      provider.answer = async () => [];
      const meta = await sharp(original).metadata();
      const copy = await sharp(original).resize(Math.round(meta.width * 0.9)).jpeg({ quality: 70 }).toBuffer();
      const second = await upload(copy, 'image/jpeg', { playerId: 'player-2' });
      const res = await deliver(service, second.event);
      expect(res.reply).toMatchObject({ id: `${second.uploadId}.rejected`, data: { reason: { code: 'banned' } } });
      expect(provider.calls).toHaveLength(1);
      expect(await exists(second.key)).toBe(false);
      expect(await uploads.get('player-2', second.uploadId)).toMatchObject({ status: 'rejected', reason: { code: 'banned' } });
      const metrics = await (await service.app.request('/metrics')).text();
      expect(metrics).toContain('avatarpipeline_moderation_decisions_total{outcome="banned",provider="nsfwjs",service="moderate"} 1');

      // Lifted, the picture is moderated again.
      await bans.remove(banned!.id);
      const third = await upload(copy, 'image/jpeg', { playerId: 'player-2' });
      expect((await deliver(service, third.event)).reply).toMatchObject({ id: `${third.uploadId}.approved` });
      expect(provider.calls).toHaveLength(2);
    });

    it('sends an upload in the review band to review: in_review with what approval would send, and review_requested; a redelivery answers the same', async () => {
      const reviewing = moderateService({ config: { ...config, MODERATION_POLICY: { Explicit: { block: 90, review: 40 } } } });
      provider.answer = async () => [{ name: 'Explicit', confidence: 55 }];
      const { playerId, uploadId, key, event } = await upload(await photo('path.png'), 'image/png');
      const res = await deliver(reviewing, event);
      expect(res.status).toBe(200);
      expect(res.reply).toMatchObject({
        id: `${uploadId}.review_requested`,
        type: EventType.reviewRequested,
        subject: key,
        data: { playerId, uploadId, uploadedAt: '2026-01-02T03:04:05.000Z', labels: [{ name: 'Explicit', confidence: 55 }] },
      });
      expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'in_review' });
      expect(await new UploadOwners(doc, TABLE).get(uploadId)).toMatchObject({ playerId, fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/) });
      // The original stays for the moderator to see; nothing is banned yet.
      expect(await exists(key)).toBe(true);
      expect((await bans.list({ limit: 10 })).items).toEqual([]);
      const metrics = await (await reviewing.app.request('/metrics')).text();
      expect(metrics).toContain('avatarpipeline_moderation_decisions_total{outcome="review",provider="nsfwjs",service="moderate"} 1');

      // Another event for the same upload (its reply was lost and the idempotency record too): the same reply.
      const again = await deliver(reviewing, { ...event, id: 'another-request.host' });
      expect(again.reply).toMatchObject({ id: `${uploadId}.review_requested`, type: EventType.reviewRequested });
      expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'in_review' });
    });
  });
});
