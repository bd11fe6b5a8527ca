import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { failureReason, identifyUpload, lastAttempt } from '../src/dead-letter.js';
import { ProfileStore } from '../src/index.js';
import {
  BUCKET,
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
  throttled,
  thumbnailedEvent,
  type Stack,
} from './harness.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

const avatarOf = (playerId: string, uploadId: string) => ({
  thumbnails: { '128': `${MEDIA}/avatars/${playerId}/${uploadId}/128.webp` },
  full: `${MEDIA}/avatars/${playerId}/${uploadId}/full.webp`,
});

/** What Knative adds to an event it gives up on. */
const knativeError = (dest: string, code: number, body: string) => ({
  knativeerrordest: dest,
  knativeerrorcode: String(code),
  knativeerrordata: b64(body),
});

function s3Event(playerId: string, uploadId: string): OutgoingEvent {
  const key = uploadKey(playerId, uploadId);
  return {
    id: 'REQID123.HOSTID456',
    source: `aws:s3.us-east-1.${BUCKET}`,
    type: 'com.amazonaws.s3.ObjectCreated:Post',
    subject: key,
    time: '2026-03-01T12:00:00.000Z',
    data: { s3SchemaVersion: '1.0', bucket: { name: BUCKET }, object: { key, size: 1234, eTag: 'abc' } },
  };
}

function approvedEvent(playerId: string, uploadId: string): OutgoingEvent {
  return {
    id: `${uploadId}.approved`,
    source: '/avatar-pipeline/moderate',
    type: 'avatarpipeline.avatar.approved',
    subject: uploadKey(playerId, uploadId),
    data: {
      playerId,
      uploadId,
      uploadedAt: '2026-03-01T12:00:00.000Z',
      bucket: BUCKET,
      key: uploadKey(playerId, uploadId),
      eTag: 'abc',
      contentType: 'image/png',
      width: 512,
      height: 512,
      provider: 'nsfwjs',
      labels: [],
    },
  };
}

const urls = (playerId: string, uploadId: string) => ({
  thumbnails: Object.fromEntries(['64', '128', '256'].map((s) => [s, `${MEDIA}/avatars/${playerId}/${uploadId}/${s}.webp`])),
  full: `${MEDIA}/avatars/${playerId}/${uploadId}/full.webp`,
});

describe('POST /dead-letter', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });
  beforeEach(() => {
    stack.sink.received.length = 0;
    stack.sink.state.failNext = 0;
  });

  /**
   * Delivers a thumbnailed event while every profile write fails: profile ends the upload ready,
   * then answers 500 (as on every attempt until the broker gives up on it).
   */
  async function readyWithoutProfile(event: OutgoingEvent): Promise<void> {
    const stores = storesOf(stack);
    vi.spyOn(stores.profiles, 'setAvatar').mockRejectedValue(throttled());
    expect((await deliver(profileService(stack, { stores }), '/events', event)).status).toBe(500);
  }

  it('announces ready for a dead thumbnailed event whose upload ended ready, the same event as the reply, and completes the profile', async () => {
    // Cognito failing throughout changes nothing: the sync is best effort.
    const pictures = fakePictures();
    pictures.setPicture.mockRejectedValue(cognitoError('InternalErrorException', 'down'));
    const service = profileService(stack, { pictures });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const renditions = await putRenditions(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');
    await readyWithoutProfile(event);
    const upload = await stack.uploads.get(playerId, uploadId);
    expect(upload?.status).toBe('ready');
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();
    const ext = knativeError('http://profile/events', 500, '{"error":{"code":"event_failed","message":"event handling failed"}}');

    const first = await deliver(service, '/dead-letter', event, ext);
    const second = await deliver(service, '/dead-letter', event, ext);

    expect([first.status, second.status]).toEqual([202, 202]);
    expect(stack.sink.received).toHaveLength(1);
    const sent = stack.sink.received[0]!;
    expect(readEvent(sent.headers, sent.body)).toEqual({
      id: `${uploadId}.ready`,
      type: 'avatarpipeline.avatar.ready',
      source: '/avatar-pipeline/profile',
      subject: uploadKey(playerId, uploadId),
      data: { playerId, uploadId, uploadedAt: '2026-03-01T12:00:00.000Z', avatar: urls(playerId, uploadId) },
    });
    expect(sent.headers['ce-time']).toBe(upload?.updatedAt);
    // Completed: the avatar is current, the upload unchanged, the renditions kept, a later write deleted.
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toMatchObject({ avatarUploadId: uploadId, avatar: urls(playerId, uploadId), pictureSyncPending: uploadId });
    expect(await stack.uploads.get(playerId, uploadId)).toEqual(upload);
    expect(await existing(stack, renditions)).toEqual([true, true, true, true]);
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'avatarpipeline.avatar.thumbnailed', stage: 'processing', outcome: 'ready' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { outcome: 'duplicate' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'failed' })).toBe(1);

    // The reply the thumbnailed event gets now, on the normal path: the very same event.
    const reply = await deliver(service, '/events', event);
    expect(reply.status).toBe(200);
    expect(readEvent(reply.headers, await reply.text())).toEqual(readEvent(sent.headers, sent.body));
    expect(reply.headers.get('ce-time')).toBe(sent.headers['ce-time']);
  });

  it('announces ready even while the profile write still fails, and finishes the profile on the retry', async () => {
    const stores = storesOf(stack);
    const service = profileService(stack, { stores });
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');
    await readyWithoutProfile(event);
    vi.spyOn(stores.profiles, 'setAvatar').mockRejectedValueOnce(throttled());

    expect((await deliver(service, '/dead-letter', event)).status).toBe(500);
    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body).id)).toEqual([`${uploadId}.ready`]);
    expect(await new ProfileStore(stack.doc, TABLE).get(playerId)).toBeUndefined();

    expect((await deliver(service, '/dead-letter', event)).status).toBe(202);
    expect((await deliver(service, '/dead-letter', event)).status).toBe(202);
    // Sent again with the same id (push takes it once); the profile is now complete.
    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body).id)).toEqual([`${uploadId}.ready`, `${uploadId}.ready`]);
    expect(stack.sink.received[1]!.body).toBe(stack.sink.received[0]!.body);
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.avatarUploadId).toBe(uploadId);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('ready');
  });

  it('answers 500 when ready cannot be announced, and announces it on the retry', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');
    await readyWithoutProfile(event);
    stack.sink.state.failNext = 1;

    expect((await deliver(service, '/dead-letter', event)).status).toBe(500);
    expect((await deliver(service, '/dead-letter', event)).status).toBe(202);
    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body).id)).toEqual([`${uploadId}.ready`]);
  });

  it('still announces ready after a dead letter of another stage found the upload ready', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');
    await readyWithoutProfile(event);

    expect((await deliver(service, '/dead-letter', approvedEvent(playerId, uploadId), knativeError('http://thumbnail/events', 500, ''))).status).toBe(202);
    expect(stack.sink.received).toHaveLength(0);
    expect((await deliver(service, '/dead-letter', event, knativeError('http://profile/events', 500, ''))).status).toBe(202);

    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body))).toMatchObject([{ id: `${uploadId}.ready`, type: 'avatarpipeline.avatar.ready' }]);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'avatarpipeline.avatar.approved', outcome: 'already_ended' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'avatarpipeline.avatar.thumbnailed', outcome: 'ready' })).toBe(1);
  });

  it('fails the upload of a dead S3 event, deletes the original and announces it once', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const event = s3Event(playerId, uploadId);
    const ext = knativeError('http://moderate.avatars.svc.cluster.local/events', 500, '{"error":{"code":"event_failed","message":"event handling failed"}}');

    const first = await deliver(service, '/dead-letter', event, ext);
    const second = await deliver(service, '/dead-letter', event, ext);

    expect([first.status, second.status]).toEqual([202, 202]);
    const reason = { code: 'processing_failed', message: 'Moderation failed after retries (HTTP 500: event_failed)' };
    expect(await stack.uploads.get(playerId, uploadId)).toMatchObject({ status: 'failed', reason });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(stack.sink.received).toHaveLength(1);
    const failed = readEvent(stack.sink.received[0]!.headers, stack.sink.received[0]!.body);
    expect(failed).toEqual({
      id: `${uploadId}.failed`,
      type: 'avatarpipeline.avatar.failed',
      source: '/avatar-pipeline/profile',
      subject: uploadKey(playerId, uploadId),
      data: { playerId, uploadId, uploadedAt: '2026-03-01T12:00:00.000Z', reason, failedEventType: 'com.amazonaws.s3.ObjectCreated:Post' },
    });
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'com.amazonaws.s3.ObjectCreated:*', stage: 'processing', outcome: 'failed' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { outcome: 'duplicate' })).toBe(1);
  });

  it('fails the upload of a dead approved event (Thumbnail generation), identified from its data', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const event = { ...approvedEvent(playerId, uploadId) };
    delete event.subject;

    const res = await deliver(service, '/dead-letter', event, knativeError('http://thumbnail/events', 422, '{"error":{"code":"unsupported_image","message":"x"}}'));

    expect(res.status).toBe(202);
    expect((await stack.uploads.get(playerId, uploadId))?.reason?.message).toBe('Thumbnail generation failed after retries (HTTP 422: unsupported_image)');
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body).data['failedEventType'])).toEqual(['avatarpipeline.avatar.approved']);
  });

  it('deletes the renditions of an upload it ends failed, and only those; a redelivery finds nothing to do', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    // Thumbnail wrote its renditions, then the thumbnailed event could not be delivered.
    const renditions = await putRenditions(stack, playerId, uploadId);
    const current = await putRenditions(stack, playerId, newUploadId(60_000));
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');

    expect((await deliver(service, '/dead-letter', event, knativeError('http://profile/events', 500, ''))).status).toBe(202);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('failed');
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(await existing(stack, current)).toEqual([true, true, true, true]);

    expect((await deliver(service, '/dead-letter', event, knativeError('http://profile/events', 500, ''))).status).toBe(202);
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(await existing(stack, current)).toEqual([true, true, true, true]);
    expect(stack.sink.received).toHaveLength(1);
  });

  it('ends an upload whose moderated bytes were replaced with that reason, deleting the later write', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const body = '{"error":{"code":"object_replaced","message":"the object is not the one that was moderated"}}';

    expect((await deliver(service, '/dead-letter', approvedEvent(playerId, uploadId), knativeError('http://thumbnail/events', 422, body))).status).toBe(202);

    const reason = { code: 'object_replaced', message: 'the file was replaced after it was checked; upload it again' };
    expect(await stack.uploads.get(playerId, uploadId)).toMatchObject({ status: 'failed', reason });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body).data['reason'])).toEqual([reason]);
  });

  it('deletes the renditions of an upload that had already ended rejected', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const renditions = await putRenditions(stack, playerId, uploadId);
    await stack.uploads.finish(playerId, uploadId, 'rejected', { reason: { code: 'moderation', message: 'x' } });

    expect((await deliver(service, '/dead-letter', approvedEvent(playerId, uploadId), knativeError('http://thumbnail/events', 500, ''))).status).toBe(202);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('rejected');
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    expect(stack.sink.received).toHaveLength(0);
  });

  it('answers 500 while the sink is down, and announces on the retry', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    const event = thumbnailedEvent(playerId, uploadId, '2026-03-01T12:00:00.000Z');
    stack.sink.state.failNext = 1;

    expect((await deliver(service, '/dead-letter', event)).status).toBe(500);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('failed');
    expect((await deliver(service, '/dead-letter', event)).status).toBe(202);
    expect((await deliver(service, '/dead-letter', event)).status).toBe(202);

    expect(stack.sink.received.map((r) => readEvent(r.headers, r.body))).toMatchObject([
      {
        id: `${uploadId}.failed`,
        type: 'avatarpipeline.avatar.failed',
        data: { reason: { message: 'Profile update failed after retries' }, failedEventType: 'avatarpipeline.avatar.thumbnailed' },
      },
    ]);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'avatarpipeline.avatar.thumbnailed', outcome: 'failed' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { outcome: 'ready' })).toBe(0);
  });

  it('only counts a notification push could not take', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await stack.uploads.finish(playerId, uploadId, 'ready', {});
    const before = await stack.uploads.get(playerId, uploadId);
    const ready: OutgoingEvent = {
      id: `${uploadId}.ready`,
      source: '/avatar-pipeline/profile',
      type: 'avatarpipeline.avatar.ready',
      subject: uploadKey(playerId, uploadId),
      data: { playerId, uploadId, uploadedAt: '2026-03-01T12:00:00.000Z', avatar: { thumbnails: {}, full: 'http://x/full.webp' } },
    };

    const res = await deliver(service, '/dead-letter', ready, knativeError('http://push/events', 503, ''));

    expect(res.status).toBe(202);
    expect(await stack.uploads.get(playerId, uploadId)).toEqual(before);
    expect(stack.sink.received).toHaveLength(0);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'avatarpipeline.avatar.ready', stage: 'notification', outcome: 'logged' })).toBe(1);
  });

  it('changes nothing for an upload that already ended ready', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const renditions = await putRenditions(stack, playerId, uploadId);
    await stack.uploads.finish(playerId, uploadId, 'ready', {});
    const before = await stack.uploads.get(playerId, uploadId);

    const res = await deliver(service, '/dead-letter', approvedEvent(playerId, uploadId), knativeError('http://thumbnail/events', 500, ''));

    expect(res.status).toBe(202);
    expect(await stack.uploads.get(playerId, uploadId)).toEqual(before);
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(true);
    expect(await existing(stack, renditions)).toEqual([true, true, true, true]);
    expect(stack.sink.received).toHaveLength(0);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { outcome: 'already_ended' })).toBe(1);
  });

  it('deletes the original and renditions of an upload it has no record of, without announcing anything, unless they are the current avatar', async () => {
    const service = profileService(stack);
    const playerId = newPlayerId();
    const [current, erased] = [newUploadId(1_000), newUploadId()];
    // Finished records expire after 30 days; the avatar they made may still be the player's.
    await new ProfileStore(stack.doc, TABLE).setAvatar(playerId, current, avatarOf(playerId, current));
    const kept = await putRenditions(stack, playerId, current);
    // An erased upload whose renditions a step begun before the erasure wrote afterwards.
    await putOriginal(stack, playerId, erased);
    const late = await putRenditions(stack, playerId, erased);

    expect((await deliver(service, '/dead-letter', s3Event(playerId, current))).status).toBe(202);
    expect((await deliver(service, '/dead-letter', s3Event(playerId, erased))).status).toBe(202);
    expect(await objectExists(stack, uploadKey(playerId, erased))).toBe(false);
    expect(await existing(stack, late)).toEqual([false, false, false, false]);
    expect(await existing(stack, kept)).toEqual([true, true, true, true]);
    expect(stack.sink.received).toHaveLength(0);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { outcome: 'unknown_upload' })).toBe(2);
  });

  it('counts events it cannot tie to an upload, or of unknown types, with bounded labels', async () => {
    const service = profileService(stack);
    const stray = { ...s3Event('p', newUploadId()), subject: 'elsewhere/file.png', data: { bucket: { name: BUCKET }, object: { key: 'elsewhere/file.png' } } };
    const unknown: OutgoingEvent = { id: '1', source: '/x', type: `com.example.${Date.now()}`, data: { hello: 'world' } };

    expect((await deliver(service, '/dead-letter', stray)).status).toBe(202);
    expect((await deliver(service, '/dead-letter', unknown)).status).toBe(202);

    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { stage: 'processing', outcome: 'unidentified' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_deadletter_events_total', { type: 'other', stage: 'other' })).toBe(1);
    expect(await metricValue(service, 'avatarpipeline_cloudevents_handled_total', { type: 'other', outcome: 'accepted' })).toBe(1);
    expect(stack.sink.received).toHaveLength(0);
  });

  it('rejects what is not a CloudEvent', async () => {
    const service = profileService(stack);
    const res = await service.app.request('/dead-letter', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
  });
});

describe('dead-letter helpers', () => {
  it('identifies uploads from domain data, the subject or the S3 object key', () => {
    const uploadId = newUploadId();
    expect(identifyUpload({ subject: undefined, data: { playerId: 'p1', uploadId, uploadedAt: '2026-03-01T12:00:00Z' } })).toEqual({
      playerId: 'p1',
      uploadId,
      uploadedAt: '2026-03-01T12:00:00Z',
    });
    expect(identifyUpload({ subject: `uploads/p2/${uploadId}`, data: {} })).toEqual({ playerId: 'p2', uploadId });
    expect(identifyUpload({ subject: undefined, data: { bucket: { name: 'b' }, object: { key: `uploads/p3/${uploadId}` } } })).toEqual({ playerId: 'p3', uploadId });
    expect(identifyUpload({ subject: 'uploads/p4/not-a-uuid', data: null })).toBeUndefined();
    expect(identifyUpload({ subject: `uploads/../${uploadId}`, data: null })).toBeUndefined();
  });

  it('reads the last attempt from base64 or raw error data and keeps internals out of the reason', () => {
    const body = '{"error":{"code":"event_failed","message":"ECONNRESET at 10.0.0.7"}}';
    expect(lastAttempt({ knativeerrorcode: '500', knativeerrordata: b64(body) })).toEqual({ status: 500, code: 'event_failed' });
    expect(lastAttempt({ knativeerrorcode: 503, knativeerrordata: body })).toEqual({ status: 503, code: 'event_failed' });
    expect(lastAttempt({ knativeerrorcode: 'nope', knativeerrordata: b64('dial tcp: no such host') })).toEqual({});
    expect(lastAttempt({ knativeerrordata: b64('{"error":{"code":"<script>"}}') })).toEqual({});
    expect(failureReason('Moderation', { status: 500, code: 'event_failed' }).message).toBe('Moderation failed after retries (HTTP 500: event_failed)');
  });
});
