import { S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost, type PresignedPostOptions } from '@aws-sdk/s3-presigned-post';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { s3Client } from '@avatar-pipeline/kit/aws';
import { PostSigner } from '../src/post-signer.js';

const key = 'uploads/player-1/019a0000-0000-7000-8000-000000000001';
const options: PresignedPostOptions = {
  Bucket: 'avatars',
  Key: key,
  Expires: 300,
  Conditions: [{ key }, ['eq', '$Content-Type', 'image/png'], ['content-length-range', 1, 4096]],
  Fields: { key, 'Content-Type': 'image/png' },
};

/** Both at the same instant: fields (in order), policy, signature and URL must be identical. */
async function expectSameAsLibrary(signer: PostSigner, s3: S3Client, at: string, opts = options) {
  vi.useFakeTimers({ now: new Date(at), toFake: ['Date'] });
  const ours = await signer.sign(opts);
  const theirs = await createPresignedPost(s3, opts);
  expect(ours.url).toBe(theirs.url);
  expect(Object.entries(ours.fields)).toEqual(Object.entries(theirs.fields));
  const policy = JSON.parse(Buffer.from(ours.fields['Policy']!, 'base64').toString('utf8')) as { expiration: string };
  expect(ours.expiresAt).toBe(policy.expiration);
  return ours;
}

describe('PostSigner', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('signs exactly as createPresignedPost does, against an S3-compatible endpoint', async () => {
    const s3 = s3Client({ region: 'us-east-1', s3Endpoint: 'http://127.0.0.1:4569', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const signer = new PostSigner(s3);
    const post = await expectSameAsLibrary(signer, s3, '2026-03-01T12:00:00.123Z');
    expect(post.url).toBe('http://127.0.0.1:4569/avatars');
    expect(post.expiresAt).toBe('2026-03-01T12:05:00Z');
    // The next day's signing key, then the cached one again.
    await expectSameAsLibrary(signer, s3, '2026-03-02T00:00:01Z');
    await expectSameAsLibrary(signer, s3, '2026-03-02T23:59:59Z', { ...options, Expires: 60 });
  });

  it('signs exactly as createPresignedPost does on AWS, with session credentials that rotate', async () => {
    let rotation = 1;
    const s3 = new S3Client({
      region: 'eu-west-3',
      // Within the SDK's refresh window, so its memoized provider asks again on every use.
      credentials: async () => ({
        accessKeyId: `ASIA${rotation}`,
        secretAccessKey: `secret-${rotation}`,
        sessionToken: `token-${rotation}`,
        expiration: new Date(Date.now() + 60_000),
      }),
    });
    const signer = new PostSigner(s3);
    const first = await expectSameAsLibrary(signer, s3, '2026-03-01T12:00:00Z');
    expect(first.url).toBe('https://avatars.s3.eu-west-3.amazonaws.com/');
    expect(first.fields['X-Amz-Security-Token']).toBe('token-1');
    // Rotated credentials are used (and a new signing key derived) at once.
    rotation = 2;
    const second = await expectSameAsLibrary(signer, s3, '2026-03-01T12:00:00Z');
    expect(second.fields['X-Amz-Credential']).toBe('ASIA2/20260301/eu-west-3/s3/aws4_request');
    s3.destroy();
  });
});
