import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { ProfileStore } from '../src/index.js';
import type { AvatarChange } from '../src/profiles.js';
import {
  MEDIA,
  TABLE,
  cognitoError,
  deliver,
  existing,
  fakePictures,
  metricValue,
  newPlayerId,
  newUploadId,
  objectExists,
  processingUpload,
  profileService,
  putOriginal,
  putRenditions,
  readEvent,
  startStack,
  storesOf,
  testClock,
  throttled,
  thumbnailedEvent,
  type Stack,
} from './harness.js';

const urls = (playerId: string, uploadId: string) => ({
  thumbnails: Object.fromEntries(['64', '128', '256'].map((s) => [s, `${MEDIA}/avatars/${playerId}/${uploadId}/${s}.webp`])),
  full: `${MEDIA}/avatars/${playerId}/${uploadId}/full.webp`,
});

describe('thumbnailed -> ready', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('replies ready with the avatar URLs, writes the profile, finishes the upload and times the pipeline', async () => {
    const clock = testClock();
    const service = profileService(stack, { clock: clock.fn });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const uploadedAt = new Date(clock.now - 3_000).toISOString();

    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, uploadedAt));
    expect(res.status).toBe(200);
    const reply = readEvent(res.headers, await res.text());
    expect(reply).toMatchObject({
      id: `${uploadId}.ready`,
      type: 'avatarpipeline.avatar.ready',
      source: '/avatar-pipeline/profile',
      subject: `uploads/${playerId}/${uploadId}`,
    });
    expect(reply.data).toEqual({ playerId, uploadId, uploadedAt, avatar: urls(playerId, uploadId) });

    const profile = await new ProfileStore(stack.doc, TABLE).get(playerId);
    expect(profile).toEqual({ playerId, avatar: urls(playerId, uploadId), avatarUploadId: uploadId, updatedAt: new Date(clock.now).toISOString() });
    const upload = await stack.uploads.get(playerId, uploadId);
    expect(upload).toMatchObject({ status: 'ready', avatar: urls(playerId, uploadId) });

    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', {}, 'avatarpipeline_pipeline_end_to_end_seconds_count')).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', {}, 'avatarpipeline_pipeline_end_to_end_seconds_sum')).toBeCloseTo(3, 3);
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', { le: '2' }, 'avatarpipeline_pipeline_end_to_end_seconds_bucket')).toBe(0);
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', { le: '3' }, 'avatarpipeline_pipeline_end_to_end_seconds_bucket')).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total', { outcome: 'current' })).toBe(1);
  });

  it('answers a duplicate with the same reply and no second update', async () => {
    const clock = testClock();
    const service = profileService(stack, { clock: clock.fn });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, new Date(clock.now - 1_000).toISOString());

    const first = await deliver(service, '/events', event);
    const firstBody = await first.text();
    const before = await new ProfileStore(stack.doc, TABLE).get(playerId);
    clock.advance(60_000);
    const second = await deliver(service, '/events', event);

    expect(second.status).toBe(200);
    expect(await second.text()).toBe(firstBody);
    expect(second.headers.get('ce-id')).toBe(first.headers.get('ce-id'));
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toEqual(before);
    expect((await stack.uploads.get(playerId, uploadId))?.updatedAt).toBe(before?.updatedAt);
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', {}, 'avatarpipeline_pipeline_end_to_end_seconds_count')).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total')).toBe(1);
  });

  it('keeps the newer avatar when an older upload finishes late, and still ends the older upload ready', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const older = newUploadId(5_000);
    const newer = newUploadId();
    expect(older < newer).toBe(true);
    await processingUpload(stack, playerId, older);
    await processingUpload(stack, playerId, newer);

    expect((await deliver(service, '/events', thumbnailedEvent(playerId, newer, new Date().toISOString()))).status).toBe(200);
    const late = await deliver(service, '/events', thumbnailedEvent(playerId, older, new Date().toISOString()));

    expect(late.status).toBe(200);
    expect(readEvent(late.headers, await late.text()).data).toMatchObject({ uploadId: older, avatar: urls(playerId, older) });
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.avatarUploadId).toBe(newer);
    expect(await stack.uploads.get(playerId, older)).toMatchObject({ status: 'ready', avatar: urls(playerId, older) });
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total', { outcome: 'stale' })).toBe(1);
  });

  it('retries a failing Cognito call within the delivery, without failing it', async () => {
    const pictures = fakePictures();
    pictures.setPicture.mockRejectedValueOnce(cognitoError('TooManyRequestsException', 'slow down'));
    const service = profileService(stack, { pictures });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);

    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-id')).toBe(`${uploadId}.ready`);
    expect(pictures.setPicture).toHaveBeenCalledTimes(2);
    expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'ok' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'failed' })).toBe(0);
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.pictureSyncPending).toBeUndefined();
  });

  it('reaches ready and notifies with Cognito always failing; the sync is counted failed and left pending on the profile', async () => {
    const pictures = fakePictures();
    pictures.setPicture.mockRejectedValue(cognitoError('InternalErrorException', 'service unavailable'));
    const clock = testClock();
    const service = profileService(stack, { clock: clock.fn, pictures });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const uploadedAt = new Date(clock.now - 2_000).toISOString();

    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, uploadedAt));

    expect(res.status).toBe(200);
    const reply = readEvent(res.headers, await res.text());
    expect(reply).toMatchObject({ id: `${uploadId}.ready`, type: 'avatarpipeline.avatar.ready' });
    expect(reply.data).toEqual({ playerId, uploadId, uploadedAt, avatar: urls(playerId, uploadId) });
    expect(await stack.uploads.get(playerId, uploadId)).toMatchObject({ status: 'ready', avatar: urls(playerId, uploadId) });
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toEqual({
      playerId,
      avatar: urls(playerId, uploadId),
      avatarUploadId: uploadId,
      updatedAt: new Date(clock.now).toISOString(),
      pictureSyncPending: uploadId,
    });
    // Its own bounded retries (3 calls), then given up: counted, never a 5xx.
    expect(pictures.setPicture).toHaveBeenCalledTimes(3);
    expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'failed' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_cloudevents_handled_total', { outcome: 'error' })).toBe(0);
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total', { outcome: 'current' })).toBe(1);

    // The next avatar supersedes the pending sync, and its own succeeds.
    pictures.setPicture.mockResolvedValue('updated');
    const next = newUploadId();
    await processingUpload(stack, playerId, next);
    expect((await deliver(service, '/events', thumbnailedEvent(playerId, next, uploadedAt))).status).toBe(200);
    const profile = await new ProfileStore(stack.doc, TABLE).get(playerId);
    expect(profile?.avatarUploadId).toBe(next);
    expect(profile?.pictureSyncPending).toBeUndefined();
    expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'ok' })).toBe(1);
  });

  it('answers 500 when the profile write fails, and converges on the retry: ready once the writes are done', async () => {
    const clock = testClock();
    const stores = storesOf(stack, clock.fn);
    const setAvatar = vi.spyOn(stores.profiles, 'setAvatar').mockRejectedValueOnce(throttled());
    const service = profileService(stack, { clock: clock.fn, stores });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, new Date(clock.now - 1_000).toISOString());

    const first = await deliver(service, '/events', event);
    expect(first.status).toBe(500);
    expect(first.headers.get('ce-id')).toBeNull();
    expect(setAvatar).toHaveBeenCalledTimes(1);
    // The upload record decided first; the profile is what is missing.
    const readyAt = (await stack.uploads.get(playerId, uploadId))?.updatedAt;
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('ready');
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();

    clock.advance(4_000);
    const retry = await deliver(service, '/events', event);
    expect(retry.status).toBe(200);
    const reply = readEvent(retry.headers, await retry.text());
    expect(reply).toMatchObject({ id: `${uploadId}.ready`, type: 'avatarpipeline.avatar.ready' });
    expect(retry.headers.get('ce-time')).toBe(readyAt);
    expect(reply.data['avatar']).toEqual(urls(playerId, uploadId));
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toMatchObject({ avatarUploadId: uploadId, avatar: urls(playerId, uploadId) });
    expect(await stack.uploads.get(playerId, uploadId)).toMatchObject({ status: 'ready', updatedAt: readyAt, avatar: urls(playerId, uploadId) });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    // Once per upload, whatever the attempts.
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', {}, 'avatarpipeline_pipeline_end_to_end_seconds_count')).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total', { outcome: 'current' })).toBe(1);

    // A later redelivery gets the same reply from the processed-event record, without writing again.
    const again = await deliver(service, '/events', event);
    expect(again.headers.get('ce-id')).toBe(`${uploadId}.ready`);
    expect(again.headers.get('ce-time')).toBe(readyAt);
    expect(setAvatar).toHaveBeenCalledTimes(2);
  });

  it('takes concurrent duplicates without conflicting writes: one transition, one profile update, the same ready event', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, new Date().toISOString());

    const answers = await Promise.all([1, 2, 3].map(() => deliver(service, '/events', event)));

    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    const replies = await Promise.all(answers.map(async (r) => ({ id: r.headers.get('ce-id'), time: r.headers.get('ce-time'), body: await r.text() })));
    expect(new Set(replies.map((r) => JSON.stringify(r))).size).toBe(1);
    expect(replies[0]?.id).toBe(`${uploadId}.ready`);
    const upload = await stack.uploads.get(playerId, uploadId);
    expect(upload).toMatchObject({ status: 'ready', avatar: urls(playerId, uploadId) });
    expect(replies[0]?.time).toBe(upload?.updatedAt);
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toMatchObject({ avatarUploadId: uploadId, avatar: urls(playerId, uploadId) });
    expect(await metricValue(service, 'avatarpipeline_pipeline_end_to_end_seconds', {}, 'avatarpipeline_pipeline_end_to_end_seconds_count')).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_updates_total')).toBe(1);
  });

  it('leaves an upload that already failed alone: no reply, no avatar, and its late renditions deleted', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await stack.uploads.finish(playerId, uploadId, 'failed', { reason: { code: 'processing_failed', message: 'x' } });
    // A thumbnail attempt still running when the upload failed wrote them afterwards.
    const renditions = await putRenditions(stack, playerId, uploadId);

    const event = thumbnailedEvent(playerId, uploadId, new Date().toISOString());
    const res = await deliver(service, '/events', event);
    expect(res.status).toBe(202);
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('failed');
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect((await deliver(service, '/events', event)).status).toBe(202);
  });

  it('deletes a later write left under the upload key once the upload is ready, keeping the renditions', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const renditions = await putRenditions(stack, playerId, uploadId);
    // The presigned POST was used again after thumbnail deleted the original; moderate left it to the upload's end.
    await putOriginal(stack, playerId, uploadId);

    const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
    expect(res.status).toBe(200);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('ready');
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(await existing(stack, renditions)).toEqual([true, true, true, true]);
  });

  it('sends events pointing outside the upload prefix to the dead-letter sink (4xx)', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, new Date().toISOString());
    (event.data as { objects: Record<string, string> }).objects['128'] = `avatars/someone-else/${uploadId}/128.webp`;

    const res = await deliver(service, '/events', event);
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_object_key' } });
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('processing');
  });
});

describe('ProfileStore.setAvatar', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('orders uploads by id: newer wins, same id is a no-op, older is stale', async () => {
    const clock = testClock();
    const store = new ProfileStore(stack.doc, TABLE, clock.fn);
    const playerId = newPlayerId();
    const [a, b] = [newUploadId(1_000), newUploadId()] as const;
    const results: AvatarChange[] = [];
    results.push(await store.setAvatar(playerId, a, urls(playerId, a)));
    clock.advance(1_000);
    results.push(await store.setAvatar(playerId, b, urls(playerId, b)));
    const afterB = await store.get(playerId);
    clock.advance(1_000);
    results.push(await store.setAvatar(playerId, b, urls(playerId, b)));
    results.push(await store.setAvatar(playerId, a, urls(playerId, a)));
    // The avatar each one replaced, for superseding (again on a redelivery).
    expect(results).toEqual([{ outcome: 'updated' }, { outcome: 'updated', previous: a }, { outcome: 'unchanged', previous: a }, { outcome: 'stale' }]);
    expect(await store.get(playerId)).toEqual(afterB);

    // A removed avatar stays removed: neither it (a redelivery) nor an older one comes back.
    expect(await store.removeAvatar(playerId, a)).toBe(false);
    expect(await store.removeAvatar(playerId, b)).toBe(true);
    expect(await store.get(playerId)).toBeUndefined();
    expect(await store.removeAvatar(playerId, b)).toBe(false);
    expect(await store.setAvatar(playerId, b, urls(playerId, b))).toEqual({ outcome: 'stale' });
    expect(await store.setAvatar(playerId, a, urls(playerId, a))).toEqual({ outcome: 'stale' });
    expect(await store.item(playerId)).toMatchObject({ avatarUploadId: b, avatarRemovedAt: new Date(clock.now).toISOString() });
    expect(await store.item(playerId)).not.toHaveProperty('avatar');
  });
});
