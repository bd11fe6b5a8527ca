/**
 * End to end against web-push-testing, a push service emulator that checks the VAPID signature
 * against the key the subscription was made with and decrypts what it receives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebPushTesting, type WebPushTesting } from '@avatar-pipeline/local';
import { generateVapidKeys } from '@avatar-pipeline/webpush';
import {
  MEDIA,
  deliver,
  failedEvent,
  metricValue,
  newPlayerId,
  newUploadId,
  pushService,
  readyEvent,
  rejectedEvent,
  reviewRequestedEvent,
  startStack,
  type PushUnderTest,
  type Stack,
} from './harness.js';

describe('Web Push through web-push-testing', () => {
  let stack: Stack;
  let emulator: WebPushTesting;
  let push: PushUnderTest;

  beforeAll(async () => {
    stack = await startStack();
    emulator = await startWebPushTesting();
    push = await pushService(stack, { allowedHosts: emulator.host });
  });
  afterAll(async () => {
    await push?.close();
    await emulator?.close();
    await stack?.close();
  });

  /** A browser subscribing with our public key, stored as subscribe would store it. */
  async function device(playerId: string, applicationServerKey = stack.keys.publicKey) {
    const { subscription, clientHash } = await emulator.subscribe(applicationServerKey);
    await stack.subscriptions.upsert(playerId, subscription, { maxDevices: 10 });
    return clientHash;
  }
  const received = async (clientHash: string) => (await emulator.notifications(clientHash)).map((m) => JSON.parse(m) as Record<string, unknown>);

  it('delivers the ready notification, decrypted and VAPID-verified, to both devices of the player', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    const phone = await device(playerId);
    const laptop = await device(playerId);

    const res = await deliver(push.service, readyEvent(playerId, uploadId));
    expect(res.status).toBe(202);
    const base = `${MEDIA}/avatars/${playerId}/${uploadId}`;
    const expected = {
      type: 'avatar.ready',
      uploadId,
      status: 'ready',
      avatar: { thumbnails: { '64': `${base}/64.webp`, '128': `${base}/128.webp`, '256': `${base}/256.webp` }, full: `${base}/full.webp` },
      title: 'Your new avatar is ready',
      body: 'Your upload has been checked and your new avatar can now be seen.',
      icon: `${base}/128.webp`,
    };
    expect(await received(phone)).toEqual([expected]);
    expect(await received(laptop)).toEqual([expected]);
    expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'sent', status_class: '2xx' })).toBeGreaterThanOrEqual(2);
  });

  it('tells a rejection and a failure in plain words', async () => {
    const playerId = newPlayerId();
    const phone = await device(playerId);
    const rejectedId = newUploadId();
    const failedId = newUploadId();

    expect((await deliver(push.service, rejectedEvent(playerId, rejectedId))).status).toBe(202);
    expect((await deliver(push.service, failedEvent(playerId, failedId))).status).toBe(202);
    expect(await received(phone)).toEqual([
      {
        type: 'avatar.rejected',
        uploadId: rejectedId,
        status: 'rejected',
        reason: { code: 'moderation', message: 'the image was refused by content moderation: Explicit (97.1%)' },
        title: 'Your avatar was not accepted',
        body: 'The image was refused by content moderation: Explicit (97.1%).',
      },
      {
        type: 'avatar.failed',
        uploadId: failedId,
        status: 'failed',
        reason: { code: 'processing_failed', message: 'Thumbnail generation failed after retries (HTTP 500: event_failed)' },
        title: 'Your avatar could not be processed',
        body: 'Something went wrong on our side. Please try uploading it again.',
      },
    ]);
  });

  it('tells the player an upload is under review, then how the review ended', async () => {
    const playerId = newPlayerId();
    const phone = await device(playerId);
    const uploadId = newUploadId();
    expect((await deliver(push.service, reviewRequestedEvent(playerId, uploadId))).status).toBe(202);
    expect((await deliver(push.service, readyEvent(playerId, uploadId))).status).toBe(202);
    expect((await received(phone)).map((n) => [n['type'], n['status'], n['uploadId'], n['title']])).toEqual([
      ['avatar.in_review', 'in_review', uploadId, 'Your avatar is under review'],
      ['avatar.ready', 'ready', uploadId, 'Your new avatar is ready'],
    ]);
  });

  it('fits a rejection with a long reason into 3 KB by cutting the body, not the reason', async () => {
    const playerId = newPlayerId();
    const phone = await device(playerId);
    const reason = `the image was refused by content moderation: ${'Visually Disturbing (88.8%), '.repeat(50)}`;
    expect((await deliver(push.service, rejectedEvent(playerId, newUploadId(), reason))).status).toBe(202);
    const [message] = await emulator.notifications(phone);
    expect(Buffer.byteLength(message!, 'utf8')).toBeLessThanOrEqual(3072);
    const parsed = JSON.parse(message!) as { title: string; body: string; reason: { code: string; message: string } };
    expect(parsed.reason).toEqual({ code: 'moderation', message: reason });
    expect(parsed.title).toBe('Your avatar was not accepted');
    expect(parsed.body).toMatch(/^The image was refused by content moderation: Visually Disturbing .*…$/);
    expect(parsed.body.length).toBeLessThan(reason.length);
  });

  it('prunes a subscription the push service expired, on the next event', async () => {
    const playerId = newPlayerId();
    const kept = await device(playerId);
    const expired = await device(playerId);
    await deliver(push.service, readyEvent(playerId, newUploadId()));
    await emulator.expire(expired);
    const prunedBefore = await metricValue(push.service, 'avatarpipeline_push_subscriptions_pruned_total', { reason: 'gone' });

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    const left = await stack.subscriptions.list(playerId);
    expect(left.map((s) => s.endpoint.split('/').pop())).toEqual([kept]);
    expect(await emulator.notifications(kept)).toHaveLength(2);
    expect(await emulator.notifications(expired)).toHaveLength(1);
    expect(await metricValue(push.service, 'avatarpipeline_push_subscriptions_pruned_total', { reason: 'gone' })).toBe(prunedBefore + 1);
  });

  it('notifies once for a duplicated event', async () => {
    const playerId = newPlayerId();
    const phone = await device(playerId);
    const event = readyEvent(playerId, newUploadId());
    expect((await deliver(push.service, event)).status).toBe(202);
    expect((await deliver(push.service, event)).status).toBe(202);
    expect(await emulator.notifications(phone)).toHaveLength(1);
  });

  it('is refused by a subscription made with another server key (the emulator checks the signature)', async () => {
    const playerId = newPlayerId();
    const stranger = await device(playerId, generateVapidKeys().publicKey);
    const before = await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'rejected', status_class: '4xx' });
    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    expect(await emulator.notifications(stranger)).toEqual([]);
    expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'rejected', status_class: '4xx' })).toBe(before + 1);
  });

  it('signs one VAPID token for the emulator across all these sends', async () => {
    expect(await metricValue(push.service, 'avatarpipeline_push_vapid_jwt_signatures_total')).toBe(1);
  });
});
