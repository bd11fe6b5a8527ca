/**
 * Avatar removal and player erasure against real stand-ins (dynalite, s3rver, an HTTP sink for
 * K_SINK, the dev issuer): who may call them, that they are idempotent, that an erasure leaves
 * nothing (the bucket listed and the table scanned afterwards, apart from what docs/data-model.md
 * says cannot be found by key), and that an upload in flight during the erasure brings nothing back.
 */
import { randomBytes } from 'node:crypto';
import { GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { uploadKey, type ApprovedData } from '@avatar-pipeline/kit/events';
import { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { RateLimiter } from '@avatar-pipeline/kit/rate-limit';
import type { Service } from '@avatar-pipeline/kit/service';
import { itemKeys, OPEN_STATUS_ATTRIBUTE, TTL_ATTRIBUTE, keys, type UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { SubscriptionStore, endpointHash } from '@avatar-pipeline/webpush';
import { ProfileStore } from '../src/profiles.js';
import { reconcile, reconcilerMetrics, type ReconcileDeps } from '../src/reconcile.js';
import { ERASED } from '../src/tombstones.js';
import {
  BUCKET,
  MEDIA,
  TABLE,
  deliver,
  existing,
  newPlayerId,
  newUploadId,
  objectExists,
  profileService,
  putOriginal,
  putRenditions,
  readEvent,
  startStack,
  storesOf,
  testClock,
  thumbnailedEvent,
  type Stack,
} from './harness.js';

const PROCESSING_TIMEOUT = 1800;
const logger = createLogger('erasure-test', 'silent');
const MODERATOR = 'mod-1';

const call = (service: Service, method: string, path: string, bearer?: string) =>
  service.app.request(path, { method, ...(bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {}) });

/** Every item of the table (the test may scan; the service never does). */
async function scanAll(stack: Stack): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await stack.doc.send(new ScanCommand({ TableName: TABLE, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Items whose keys or attributes mention any of `needles` (a Set is listed as its members). */
async function mentioning(stack: Stack, needles: string[]): Promise<{ pk: string; sk: string }[]> {
  const text = (value: unknown) => JSON.stringify(value, (_k, v: unknown) => (v instanceof Set ? [...v] : v));
  return (await scanAll(stack))
    .filter((item) => needles.some((needle) => text(item).includes(needle)))
    .map((item) => ({ pk: String(item['pk']), sk: String(item['sk']) }))
    .sort((a, b) => a.pk.localeCompare(b.pk));
}

async function listBucket(stack: Stack, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for await (const key of stack.objects.list(prefix)) found.push(key);
  return found.sort();
}

const labels = [{ name: 'Suggestive', confidence: 71 }];

/** A player with everything the pipeline keeps about one: see `erasure leaves nothing`. */
async function populate(stack: Stack, service: Service, uploads: UploadStore, playerId: string) {
  const owners = new UploadOwners(stack.doc, TABLE);
  const processing = async (uploadId: string) => {
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 5_242_880 });
    await uploads.markProcessing(playerId, uploadId);
  };
  const ready = async (uploadId: string) => {
    await processing(uploadId);
    await owners.put({ uploadId, playerId, fingerprint: randomBytes(8).toString('hex') });
    await putRenditions(stack, playerId, uploadId);
    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(res.status).toBe(200);
  };
  const [old, current, review, pending, failed] = [newUploadId(5_000), newUploadId(4_000), newUploadId(3_000), newUploadId(2_000), newUploadId(1_000)];
  // An avatar superseded by the current one (both with renditions, OWNER items, EVENT records).
  await ready(old);
  await ready(current);
  // An upload waiting for a moderator: REVIEW item, OWNER item, its original.
  await processing(review);
  await putOriginal(stack, playerId, review);
  const fingerprint = randomBytes(8).toString('hex');
  const approved: ApprovedData = {
    playerId,
    uploadId: review,
    uploadedAt: new Date().toISOString(),
    bucket: BUCKET,
    key: uploadKey(playerId, review),
    eTag: 'etag',
    sha256: randomBytes(32).toString('hex'),
    contentType: 'image/png',
    width: 512,
    height: 512,
    provider: 'nsfwjs',
    labels,
  };
  expect((await uploads.requestReview({ playerId, uploadId: review, review: { fingerprint, labels, uploadedAt: approved.uploadedAt, approved } })).changed).toBe(true);
  await owners.put({ uploadId: review, playerId, fingerprint });
  // A ticket whose file arrived, not yet moderated.
  await uploads.createPending({ playerId, uploadId: pending, contentType: 'image/png', maxBytes: 1024 });
  await putOriginal(stack, playerId, pending);
  // An upload the dead-letter sink failed (its settled record, keyed by the upload).
  await processing(failed);
  const dead = await deliver(service, '/dead-letter', { ...thumbnailedEvent(playerId, failed, new Date().toISOString()), type: EventType.approved, id: `${failed}.approved` });
  expect(dead.status).toBe(202);
  // Devices, and push's claims for the current avatar's ready and the review's notification.
  const subscriptions = new SubscriptionStore(stack.doc, TABLE);
  const endpoint = `https://push.example/${playerId}`;
  await subscriptions.upsert(playerId, { endpoint, expirationTime: null, keys: { p256dh: 'BP', auth: 'au' } }, { maxDevices: 5 });
  for (const pk of [`PUSHED#${current}.ready`, `PUSHED#${review}.in_review`]) {
    await stack.doc.send(new PutCommand({ TableName: TABLE, Item: { pk, sk: `SUB#${endpointHash(endpoint)}`, state: 'done' } }));
  }
  // Rate-limit windows of presign and subscribe.
  for (const scope of ['uploads', 'subscriptions']) await new RateLimiter(stack.doc, TABLE, { scope, limit: 10, windowSeconds: 3600 }).consume(playerId);
  // moderate's record of the S3 event of `current` (ids S3 made up): in the player's partition.
  const s3Source = `aws:s3.us-east-1.${BUCKET}`;
  await new ProcessedEvents(stack.doc, TABLE, 'moderate').record({ source: s3Source, id: `REQ-${current}.HOST`, subject: uploadKey(playerId, current) }, {
    id: `${current}.approved`,
    source: '/avatar-pipeline/moderate',
    type: EventType.approved,
    data: { playerId, uploadId: current },
  });
  return { old, current, review, pending, failed, uploadIds: [old, current, review, pending, failed] };
}

describe('DELETE /v1/players/{playerId}/avatar and DELETE /v1/players/{playerId}: who may', () => {
  let stack: Stack;
  let service: Service;
  const playerId = newPlayerId();
  let player: string;
  let other: string;
  let moderator: string;

  beforeAll(async () => {
    stack = await startStack();
    service = profileService(stack);
    player = await stack.issuer.mint(playerId);
    other = await stack.issuer.mint(newPlayerId());
    moderator = await stack.issuer.mint(MODERATOR, { roles: ['moderator'] });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('refuses another player (403 forbidden), a missing token (401) and a bad player id (400)', async () => {
    for (const path of [`/v1/players/${playerId}/avatar`, `/v1/players/${playerId}`]) {
      const res = await call(service, 'DELETE', path, other);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
      expect((await call(service, 'DELETE', path)).status).toBe(401);
    }
    // A role that is not the moderator's opens nothing.
    const support = await stack.issuer.mint('support-1', { roles: ['support'] });
    expect((await call(service, 'DELETE', `/v1/players/${playerId}`, support)).status).toBe(403);
    const bad = await call(service, 'DELETE', '/v1/players/bad%20id!/avatar', player);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_player_id');
    expect(stack.sink.received).toHaveLength(0);
  });

  it('lets the player and a moderator remove an avatar: 204, also when there is none', async () => {
    expect((await call(service, 'DELETE', `/v1/players/${playerId}/avatar`, player)).status).toBe(204);
    expect((await call(service, 'DELETE', `/v1/players/${newPlayerId()}/avatar`, moderator)).status).toBe(204);
  });

  it('lets a moderator erase any player: 202 with when', async () => {
    const target = newPlayerId();
    const res = await call(service, 'DELETE', `/v1/players/${target}`, moderator);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { playerId: string; erasedAt: string };
    expect(body.playerId).toBe(target);
    expect(Date.parse(body.erasedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('documents both routes in OpenAPI', async () => {
    const doc = (await (await service.app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    expect(Object.keys(doc.paths['/v1/players/{playerId}/avatar']?.['delete']?.responses ?? {})).toEqual(expect.arrayContaining(['204', '403']));
    expect(Object.keys(doc.paths['/v1/players/{playerId}']?.['delete']?.responses ?? {})).toEqual(expect.arrayContaining(['202', '403']));
  });
});

describe('DELETE /v1/players/{playerId}/avatar', () => {
  let stack: Stack;
  let service: Service;

  beforeAll(async () => {
    stack = await startStack();
    service = profileService(stack);
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function withAvatar(playerId: string, uploadId = newUploadId()) {
    await stack.uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024 });
    await stack.uploads.markProcessing(playerId, uploadId);
    await new UploadOwners(stack.doc, TABLE).put({ uploadId, playerId, fingerprint: '0123456789abcdef' });
    const renditions = await putRenditions(stack, playerId, uploadId);
    expect((await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()))).status).toBe(200);
    return { uploadId, renditions };
  }
  const record = async (playerId: string, uploadId: string) =>
    (await stack.doc.send(new GetCommand({ TableName: TABLE, Key: itemKeys.upload(playerId, uploadId), ConsistentRead: true }))).Item;

  it('stops serving the avatar and deletes its objects and OWNER item; a repeat is 204 too; it never comes back', async () => {
    const playerId = newPlayerId();
    const token = await stack.issuer.mint(playerId);
    const { uploadId, renditions } = await withAvatar(playerId);
    // The current avatar's record and OWNER item outlive their TTL while it is current.
    expect(await record(playerId, uploadId)).not.toHaveProperty(TTL_ATTRIBUTE);
    expect(await new UploadOwners(stack.doc, TABLE).get(uploadId)).toBeDefined();

    expect((await call(service, 'DELETE', `/v1/players/${playerId}/avatar`, token)).status).toBe(204);
    expect((await call(service, 'GET', `/v1/players/${playerId}/profile`, token)).status).toBe(404);
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(await new UploadOwners(stack.doc, TABLE).get(uploadId)).toBeUndefined();
    // The record expires again like any finished one, without the URLs that are gone.
    expect(await record(playerId, uploadId)).toHaveProperty(TTL_ATTRIBUTE);
    expect(await record(playerId, uploadId)).not.toHaveProperty('avatar');

    // Idempotent, and a redelivery of the upload's thumbnailed event does not bring it back.
    expect((await call(service, 'DELETE', `/v1/players/${playerId}/avatar`, token)).status).toBe(204);
    expect((await deliver(service, '/events', { ...thumbnailedEvent(playerId, uploadId, new Date().toISOString()), id: `${uploadId}.again` })).status).toBe(200);
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();

    // A newer upload becomes the avatar as usual.
    const next = await withAvatar(playerId);
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.avatarUploadId).toBe(next.uploadId);
  });

  it("lets a moderator remove another player's avatar", async () => {
    const playerId = newPlayerId();
    const { renditions } = await withAvatar(playerId);
    const moderator = await stack.issuer.mint(MODERATOR, { roles: ['moderator'] });
    expect((await call(service, 'DELETE', `/v1/players/${playerId}/avatar`, moderator)).status).toBe(204);
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
  });

  it('keeps a newer avatar that became current while the removal ran', async () => {
    const playerId = newPlayerId();
    const first = await withAvatar(playerId);
    const newer = newUploadId();
    // The removal read `first` as current; the newer upload's ready write lands before its own.
    const profiles = new ProfileStore(stack.doc, TABLE);
    const racing = {
      ...profiles,
      item: (id: string) => profiles.item(id),
      get: (id: string) => profiles.get(id),
      removeAvatar: async (id: string, uploadId: string) => {
        await stack.uploads.createPending({ playerId, uploadId: newer, contentType: 'image/png', maxBytes: 1024 });
        await stack.uploads.markProcessing(playerId, newer);
        expect((await deliver(service, '/events', thumbnailedEvent(playerId, newer, new Date().toISOString()))).status).toBe(200);
        return profiles.removeAvatar(id, uploadId);
      },
    };
    const { removeAvatar } = await import('../src/avatar-removal.js');
    const { AvatarRecords } = await import('../src/profiles.js');
    const result = await removeAvatar(
      { profiles: racing, records: new AvatarRecords(stack.doc, TABLE), owners: new UploadOwners(stack.doc, TABLE), objects: stack.objects },
      playerId,
    );
    expect(result).toEqual({ uploadId: first.uploadId, removed: false });
    expect((await profiles.get(playerId))?.avatarUploadId).toBe(newer);
    // What was asked to go went.
    expect(await existing(stack, first.renditions)).toEqual([false, false, false, false]);
  });
});

describe('DELETE /v1/players/{playerId}: erasure', () => {
  let stack: Stack;
  let clock: ReturnType<typeof testClock>;
  let uploads: UploadStore;
  let service: Service;
  let deps: ReconcileDeps;

  beforeEach(async () => {
    // A stack per test: the scans and the reconciler's passes look at everything.
    stack = await startStack();
    clock = testClock(Date.now());
    const stores = storesOf(stack, clock.fn);
    uploads = stores.uploads;
    service = profileService(stack, { clock: clock.fn, stores });
    deps = {
      stores,
      objects: stack.objects,
      sink: stack.sink.url,
      pendingTimeoutSeconds: 3600,
      processingTimeoutSeconds: PROCESSING_TIMEOUT,
      reviewTimeoutSeconds: 86_400,
      avatarRetainSeconds: 86_400,
      metrics: reconcilerMetrics(new Registry()),
      logger,
      clock: clock.fn,
    };
  });
  afterEach(async () => {
    await stack?.close();
  });

  const sent = () => stack.sink.received.map((r) => readEvent(r.headers, r.body));
  const erase = async (playerId: string, bearer?: string) => call(service, 'DELETE', `/v1/players/${playerId}`, bearer ?? (await stack.issuer.mint(playerId)));
  const tombstone = async (playerId: string) =>
    (await stack.doc.send(new GetCommand({ TableName: TABLE, Key: { pk: keys.player(playerId), sk: ERASED }, ConsistentRead: true }))).Item;

  it('leaves nothing: the bucket holds nothing of the player, and the table only the tombstone', async () => {
    const playerId = newPlayerId();
    const bystander = newPlayerId();
    const mine = await populate(stack, service, uploads, playerId);
    const theirs = await populate(stack, service, uploads, bystander);
    expect(await listBucket(stack, `avatars/${playerId}/`)).not.toEqual([]);
    expect(await listBucket(stack, `uploads/${playerId}/`)).not.toEqual([]);
    const before = await mentioning(stack, [bystander, ...theirs.uploadIds]);
    // Every kind of item the pipeline keeps about a player is there to be erased.
    const kinds = (list: { pk: string; sk: string }[]) =>
      [...new Set(list.map(({ pk, sk }) => `${pk.split('#')[0]} ${/^\d/.test(sk) ? '<window>' : sk.split('#')[0]}`))].sort();
    expect(kinds(await mentioning(stack, [playerId, ...mine.uploadIds]))).toEqual([
      'PLAYER EVENT',
      'PLAYER PROFILE',
      'PLAYER SUB',
      'PLAYER UPLOAD',
      'PUSHED SUB',
      'PUSHEP OWNER',
      'RATE <window>',
      'REVIEW REVIEW',
      'UPLOAD OWNER',
    ].sort());
    const bucketBefore = await listBucket(stack);
    stack.sink.received.length = 0;

    const res = await erase(playerId);
    expect(res.status).toBe(202);
    const { erasedAt } = (await res.json()) as { erasedAt: string };
    expect(erasedAt).toBe(new Date(clock.now).toISOString());

    // Nothing of the player in the bucket; the bystander's objects all there.
    expect(await listBucket(stack)).toEqual(bucketBefore.filter((key) => !key.includes(`/${playerId}/`)));
    // The table: only the tombstone (it expires in 3 days); the idempotency records went with the player's partition.
    expect(await mentioning(stack, [playerId, ...mine.uploadIds])).toEqual([{ pk: keys.player(playerId), sk: ERASED }]);
    expect((await scanAll(stack)).filter((item) => String(item['pk']) === keys.player(playerId) && String(item['sk']).startsWith('EVENT#'))).toEqual([]);
    expect(await mentioning(stack, [bystander, ...theirs.uploadIds])).toEqual(before);

    // Announced once, for consumers outside the system.
    expect(sent()).toEqual([
      {
        id: `${playerId}.erased.${clock.now}`,
        type: EventType.playerErased,
        source: '/avatar-pipeline/profile',
        subject: `players/${playerId}`,
        data: { playerId, erasedAt },
      },
    ]);

    // Idempotent: a repeat (the client retrying) answers the same erasure and announces nothing new.
    clock.advance(60_000);
    const again = await erase(playerId, await stack.issuer.mint(MODERATOR, { roles: ['moderator'] }));
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ playerId, erasedAt });
    expect(sent()).toHaveLength(1);

    // The reconciler's last pass, once nothing begun before the erasure can still run: the
    // tombstone leaves the index and forgets the upload ids; it expires 3 days after the request.
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 0, errors: 0 });
    clock.advance(PROCESSING_TIMEOUT * 1000 + 1000);
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 1, errors: 0 });
    const stone = await tombstone(playerId);
    expect(stone).toMatchObject({ playerId, erasedAt, announced: true });
    expect(stone).not.toHaveProperty(OPEN_STATUS_ATTRIBUTE);
    expect(stone).not.toHaveProperty('uploadIds');
    // 3 days after the latest request.
    expect(stone?.[TTL_ATTRIBUTE]).toBe(Math.floor((clock.now - PROCESSING_TIMEOUT * 1000 - 1000) / 1000) + 3 * 24 * 3600);
    expect(await mentioning(stack, [playerId, ...mine.uploadIds])).toEqual([{ pk: keys.player(playerId), sk: ERASED }]);
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 0, errors: 0 });
    expect(sent()).toHaveLength(1);
  });

  it('announces on the last pass an erasure the request could not (503), and a retry of the request does too', async () => {
    const playerId = newPlayerId();
    stack.sink.state.failNext = 1;
    const res = await erase(playerId);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unavailable');
    expect(sent()).toEqual([]);
    clock.advance(PROCESSING_TIMEOUT * 1000 + 1000);
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 1, errors: 0 });
    expect(sent().map((e) => e.type)).toEqual([EventType.playerErased]);
  });

  it('brings nothing back when a thumbnailed event of an upload in flight arrives after the erasure', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(playerId, uploadId);
    expect((await erase(playerId)).status).toBe(202);
    // Thumbnail had passed its approval check before the erasure: it renders, then replies.
    const renditions = await putRenditions(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(res.status).toBe(202);
    expect(res.headers.get('ce-id')).toBeNull();
    expect(await existing(stack, [...renditions, uploadKey(playerId, uploadId)])).toEqual([false, false, false, false, false]);
    expect(await new ProfileStore(stack.doc, TABLE).item(playerId)).toBeUndefined();
    expect(await listBucket(stack)).toEqual([]);
    // Besides the tombstone, profile's own record of that event (in the player's partition), which goes with the last pass.
    const left = await mentioning(stack, [playerId, uploadId]);
    expect(left.map((item) => item.sk.replace(/^(EVENT#profile#).*/, '$1'))).toEqual([ERASED, 'EVENT#profile#'].sort());
    clock.advance(PROCESSING_TIMEOUT * 1000 + 1000);
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 1, errors: 0 });
    expect(await mentioning(stack, [playerId, uploadId])).toEqual([{ pk: keys.player(playerId), sk: ERASED }]);
  });

  it('undoes a ready upload whose profile write lands after the erasure deleted everything', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(playerId, uploadId);
    const renditions = await putRenditions(stack, playerId, uploadId);
    // The upload ends ready, then the erasure runs to its end, then the profile write goes out.
    const token = await stack.issuer.mint(playerId);
    let erased: Response | undefined;
    const stores = storesOf(stack, clock.fn);
    const setAvatar = stores.profiles.setAvatar.bind(stores.profiles);
    vi.spyOn(stores.profiles, 'setAvatar').mockImplementationOnce(async (...args) => {
      erased = await call(service, 'DELETE', `/v1/players/${playerId}`, token);
      return setAvatar(...args);
    });
    const racing = profileService(stack, { clock: clock.fn, stores });
    const res = await deliver(racing, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(erased?.status).toBe(202);
    // No ready announced for an erased player, and nothing of the upload left.
    expect(res.status).toBe(202);
    expect(await new ProfileStore(stack.doc, TABLE).item(playerId)).toBeUndefined();
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(await uploads.get(playerId, uploadId)).toBeUndefined();
    expect(sent().map((e) => e.type)).toEqual([EventType.playerErased]);
  });

  it('sweeps on the last pass what a step begun before the erasure wrote after it (OWNER item, renditions whose event was lost)', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(playerId, uploadId);
    expect((await erase(playerId)).status).toBe(202);
    // moderate's OWNER write and thumbnail's renditions land late; the thumbnailed event is lost.
    await new UploadOwners(stack.doc, TABLE).put({ uploadId, playerId, fingerprint: 'fedcba9876543210' });
    const renditions = await putRenditions(stack, playerId, uploadId);

    clock.advance(PROCESSING_TIMEOUT * 1000 + 1000);
    expect(await reconcile(deps)).toMatchObject({ erasuresFinished: 1, errors: 0 });
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(await mentioning(stack, [playerId, uploadId])).toEqual([{ pk: keys.player(playerId), sk: ERASED }]);
  });

  it('lets an upload issued after the erasure become the avatar', async () => {
    const playerId = newPlayerId();
    expect((await erase(playerId)).status).toBe(202);
    clock.advance(1000);
    const uploadId = newUploadId();
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024 });
    await uploads.markProcessing(playerId, uploadId);
    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(res.status).toBe(200);
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.avatar.full).toBe(`${MEDIA}/avatars/${playerId}/${uploadId}/full.webp`);
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
  });
});
