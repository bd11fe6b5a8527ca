import { describe, expect, it } from 'vitest';
import { EventType } from '@avatar-pipeline/kit/topology';
import { MAX_PAYLOAD_BYTES, encodeNotification, notificationFor, type Notification } from '../src/index.js';

const uploadId = '019a0000-0000-7000-8000-000000000001';
const uploadedAt = '2026-03-01T11:59:50.000Z';
const avatar = {
  thumbnails: { '64': 'https://media.example.com/a/64.webp', '128': 'https://media.example.com/a/128.webp', '256': 'https://media.example.com/a/256.webp' },
  full: 'https://media.example.com/a/full.webp',
};
const reason = (message: string) => ({ code: 'moderation', message });
const bytes = (json: string) => Buffer.byteLength(json, 'utf8');

describe('notification payloads', () => {
  it('ready: the avatar, plain words and the 128 px thumbnail as icon, in this field order', () => {
    const json = encodeNotification(notificationFor({ type: EventType.ready, data: { playerId: 'p', uploadId, uploadedAt, avatar } }));
    expect(Object.keys(JSON.parse(json))).toEqual(['type', 'uploadId', 'status', 'avatar', 'title', 'body', 'icon']);
    expect(JSON.parse(json)).toEqual({
      type: 'avatar.ready',
      uploadId,
      status: 'ready',
      avatar,
      title: 'Your new avatar is ready',
      body: 'Your upload has been checked and your new avatar can now be seen.',
      icon: avatar.thumbnails['128'],
    });
  });

  it('rejected: the reason, and the reason as a sentence for the body', () => {
    const n = notificationFor({ type: EventType.rejected, data: { playerId: 'p', uploadId, uploadedAt, reason: reason('the image was refused by content moderation: Explicit (97.1%)') } });
    expect(n).toEqual({
      type: 'avatar.rejected',
      uploadId,
      status: 'rejected',
      reason: reason('the image was refused by content moderation: Explicit (97.1%)'),
      title: 'Your avatar was not accepted',
      body: 'The image was refused by content moderation: Explicit (97.1%).',
    });
  });

  it('failed: the reason, and a body without internals', () => {
    const data = { playerId: 'p', uploadId, uploadedAt, reason: { code: 'processing_failed', message: 'Moderation failed after retries (HTTP 500)' }, failedEventType: 'x' };
    expect(notificationFor({ type: EventType.failed, data })).toMatchObject({
      type: 'avatar.failed',
      status: 'failed',
      reason: data.reason,
      title: 'Your avatar could not be processed',
      body: 'Something went wrong on our side. Please try uploading it again.',
    });
  });

  it('expired: the reason, and plain words asking for the picture again', () => {
    const data = { playerId: 'p', uploadId, createdAt: '2026-03-01T10:00:00.000Z', reason: { code: 'expired', message: 'the upload did not arrive before its ticket expired' } };
    expect(notificationFor({ type: EventType.expired, data })).toEqual({
      type: 'avatar.expired',
      uploadId,
      status: 'expired',
      reason: data.reason,
      title: 'Your avatar upload did not arrive',
      body: 'The upload was not finished in time. Please choose your picture again.',
    });
  });

  it('review requested: status in_review, plain words, and nothing of what the model suspected', () => {
    const data = { playerId: 'p', uploadId, uploadedAt, labels: [{ name: 'Suggestive', confidence: 72.4 }] };
    const json = encodeNotification(notificationFor({ type: EventType.reviewRequested, data }));
    expect(JSON.parse(json)).toEqual({
      type: 'avatar.in_review',
      uploadId,
      status: 'in_review',
      title: 'Your avatar is under review',
      body: 'A moderator will check your picture before it can be seen. We will let you know.',
    });
    expect(json).not.toContain('Suggestive');
  });

  it('cuts display text, never the structured fields, to fit 3 KB of UTF-8', () => {
    // Multi-byte characters: the limit is in bytes, not characters; no half surrogate pairs.
    const long = `the image was refused: ${'überlange Begründung 😀 '.repeat(200)}`;
    const n = notificationFor({ type: EventType.rejected, data: { playerId: 'p', uploadId, uploadedAt, reason: { code: 'moderation', message: long.slice(0, 1000) } } });
    const withLongBody: Notification = { ...n, body: long };
    const json = encodeNotification(withLongBody);
    expect(bytes(json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(bytes(json)).toBeGreaterThan(MAX_PAYLOAD_BYTES - 8);
    const parsed = JSON.parse(json) as Notification;
    expect(parsed.reason).toEqual(n.reason);
    expect(parsed.title).toBe(n.title);
    expect(parsed.body.endsWith('…')).toBe(true);
    expect(long.startsWith(parsed.body.slice(0, -1))).toBe(true);
    expect(parsed.body).not.toMatch(/[\uD800-\uDBFF]…$/);
  });

  it('cuts a reason only when the structured fields alone are over the limit', () => {
    const huge = 'x'.repeat(5000);
    const n = notificationFor({ type: EventType.rejected, data: { playerId: 'p', uploadId, uploadedAt, reason: reason(huge) } });
    const parsed = JSON.parse(encodeNotification(n)) as Notification;
    expect(bytes(JSON.stringify(parsed))).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(parsed.reason?.code).toBe('moderation');
    expect(parsed.body).toBe('');
    expect(parsed.title).toBe('Your avatar was not accepted');
    expect(parsed.reason?.message.endsWith('…')).toBe(true);
  });

  it('leaves a short notification untouched', () => {
    const n = notificationFor({ type: EventType.ready, data: { playerId: 'p', uploadId, uploadedAt, avatar } });
    expect(encodeNotification(n)).toBe(JSON.stringify(n));
  });

  it('throws when not even the structured fields fit', () => {
    const n = notificationFor({ type: EventType.ready, data: { playerId: 'p', uploadId, uploadedAt, avatar: { ...avatar, full: `https://x.example/${'a'.repeat(4000)}` } } });
    expect(() => encodeNotification(n)).toThrow(RangeError);
  });
});
