import { describe, expect, it } from 'vitest';
import { approvedSchema, avatarKey, avatarPrefix, parseUploadKey, playerIdSchema, readySchema, rejectedSchema, s3EntitySchema, uploadKey } from '../src/events.js';
import { contentSha256 } from '../src/objects.js';

const UPLOAD = '0192f3a4-5b6c-7d8e-9f01-23456789abcd';
const OTHER_UPLOAD = '01936b2e-1c2d-7abc-8def-0123456789ab';
const V4 = '3b241101-e2bb-4255-8caf-4136c566a962';
/** SHA-256 of the empty string. */
const SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('upload keys', () => {
  it.each([
    ['p', UPLOAD],
    ['player-1', OTHER_UPLOAD],
    ['A.b_c-9', UPLOAD],
    ['_x', UPLOAD],
    ['x'.repeat(128), UPLOAD],
  ])('round-trips %s', (playerId, uploadId) => {
    const key = uploadKey(playerId, uploadId);
    expect(key).toBe(`uploads/${playerId}/${uploadId}`);
    expect(parseUploadKey(key)).toEqual({ playerId, uploadId });
  });

  it.each([
    `uploads/../${UPLOAD}`,
    `uploads/./${UPLOAD}`,
    `uploads/.hidden/${UPLOAD}`,
    `uploads/p/../${UPLOAD}`,
    `uploads/p/${UPLOAD}/..`,
    `uploads/p/${UPLOAD}/extra`,
    `uploads/p/q/${UPLOAD}`,
    `uploads//${UPLOAD}`,
    `/uploads/p/${UPLOAD}`,
    `uploads/p/${UPLOAD}/`,
    `avatars/p/${UPLOAD}`,
    `Uploads/p/${UPLOAD}`,
    `uploads/p%2F..%2Fq/${UPLOAD}`,
    `uploads/p q/${UPLOAD}`,
    `uploads/${'x'.repeat(129)}/${UPLOAD}`,
    'uploads/p/',
    'uploads/p/not-a-uuid',
    `uploads/p/${V4}`,
    `uploads/p/${UPLOAD}x`,
    `uploads/p/${UPLOAD.replace(/-/g, '')}`,
    `uploads/p\\..\\x/${UPLOAD}`,
    '',
    'uploads',
  ])('rejects %j', (key) => {
    expect(parseUploadKey(key)).toBeUndefined();
  });

  it('puts the renditions of an upload under its own avatars/ prefix', () => {
    expect(avatarPrefix('player-1', UPLOAD)).toBe(`avatars/player-1/${UPLOAD}/`);
    expect(avatarKey('player-1', UPLOAD, '64')).toBe(`avatars/player-1/${UPLOAD}/64.webp`);
    expect(avatarKey('player-1', UPLOAD, 'full').startsWith(avatarPrefix('player-1', UPLOAD))).toBe(true);
  });

  it('keeps player ids to a safe alphabet', () => {
    for (const bad of ['', '.', '..', '../x', 'a/b', 'a\\b', 'a b', 'é', 'x'.repeat(129), 'a\nb', '%2e%2e']) {
      expect(playerIdSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('event data schemas', () => {
  const ref = { playerId: 'p', uploadId: UPLOAD, uploadedAt: '2030-01-01T00:00:00.000Z' };

  it('accept the data the pipeline sends', () => {
    expect(
      approvedSchema.safeParse({
        ...ref,
        bucket: 'avatars',
        key: uploadKey('p', UPLOAD),
        eTag: 'abc',
        sha256: SHA256,
        contentType: 'image/png',
        width: 10,
        height: 20,
        provider: 'nsfwjs',
        labels: [{ name: 'Neutral', confidence: 99.5 }],
      }).success,
    ).toBe(true);
    expect(rejectedSchema.safeParse({ ...ref, reason: { code: 'explicit', message: 'no' } }).success).toBe(true);
    expect(
      readySchema.safeParse({ ...ref, avatar: { thumbnails: { '64': 'https://cdn.test/a/64.webp' }, full: 'https://cdn.test/a/full.webp' } }).success,
    ).toBe(true);
    expect(s3EntitySchema.safeParse({ bucket: { name: 'avatars' }, object: { key: 'uploads/p/u', size: 3, extra: 1 }, other: true }).success).toBe(true);
  });

  it('reject data that would poison keys or state', () => {
    expect(rejectedSchema.safeParse({ ...ref, playerId: '../x', reason: { code: 'a', message: 'b' } }).success).toBe(false);
    expect(rejectedSchema.safeParse({ ...ref, uploadId: V4, reason: { code: 'a', message: 'b' } }).success).toBe(false);
    expect(rejectedSchema.safeParse({ ...ref, uploadedAt: 'yesterday', reason: { code: 'a', message: 'b' } }).success).toBe(false);
    expect(readySchema.safeParse({ ...ref, avatar: { thumbnails: { small: 'https://cdn.test/x' }, full: 'https://cdn.test/y' } }).success).toBe(false);
    expect(s3EntitySchema.safeParse({ bucket: { name: 'avatars' }, object: { key: '', size: 3 } }).success).toBe(false);
    expect(s3EntitySchema.safeParse({ bucket: { name: 'avatars' }, object: { key: 'k', size: -1 } }).success).toBe(false);
  });

  it('make an approval name the exact bytes moderated (their SHA-256, lowercase hex)', () => {
    const approved = { ...ref, bucket: 'avatars', key: uploadKey('p', UPLOAD), eTag: 'abc', contentType: 'image/png', width: 10, height: 20, provider: 'nsfwjs', labels: [] };
    expect(contentSha256(Buffer.alloc(0))).toBe(SHA256);
    expect(approvedSchema.safeParse({ ...approved, sha256: contentSha256(Buffer.alloc(0)) }).success).toBe(true);
    for (const sha256 of [undefined, '', 'abc', SHA256.toUpperCase(), `${SHA256}0`, 'g'.repeat(64)]) {
      expect(approvedSchema.safeParse({ ...approved, sha256 }).success, String(sha256)).toBe(false);
    }
  });
});
