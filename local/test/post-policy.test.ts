import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { BUCKET, createPostPolicyGuard, startTestBackends, type S3Backend } from '../src/index.js';

const MAX = 100_000;

describe('POST policy guard in front of s3rver', () => {
  let backends: S3Backend;
  let client: S3Client;
  let server: Server;
  let guardUrl: string;
  let leaf: Buffer;
  let now: Date;
  let n = 0;

  beforeAll(async () => {
    backends = await startTestBackends({ prefix: 'ap-guard-', dynamo: false });
    client = backends.s3;
    const guard = createPostPolicyGuard({
      upstream: backends.s3Server.endpoint,
      logger: createLogger('guard', 'silent'),
      clock: () => now,
      maxBodyBytes: 256 * 1024,
    });
    server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: guard.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
    });
    guardUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    leaf = await readFile(new URL('../../fixtures/photos/leaf.jpg', import.meta.url));
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await backends?.close();
  });
  beforeEach(() => {
    now = new Date();
  });

  const freshKey = () => `uploads/p-guard/${++n}`;

  async function presign(key: string, maxBytes = MAX) {
    return createPresignedPost(client, {
      Bucket: BUCKET,
      Key: key,
      Expires: 300,
      Conditions: [['eq', '$Content-Type', 'image/jpeg'], ['content-length-range', 1, maxBytes]],
      Fields: { 'Content-Type': 'image/jpeg' },
    });
  }

  function form(fields: Record<string, string>, file: Uint8Array, extra: [string, string][] = []): FormData {
    const body = new FormData();
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    for (const [name, value] of extra) body.append(name, value);
    body.append('file', new Blob([file], { type: 'image/jpeg' }), 'leaf.jpg');
    return body;
  }

  const post = (body: FormData, path = `/${BUCKET}`) => fetch(`${guardUrl}${path}`, { method: 'POST', body });

  const stored = (key: string) => s3Objects(client, BUCKET).exists(key);

  async function expectRefused(res: Response, status: number, code: string, message?: RegExp) {
    const text = await res.text();
    expect(res.status, text).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/xml/);
    expect(text).toContain(`<Code>${code}</Code>`);
    if (message) expect(text).toMatch(message);
  }

  it('forwards an upload that satisfies its policy, byte for byte', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    const res = await post(form(fields, leaf));
    expect(res.status, await res.text()).toBe(204);
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(got.ContentType).toBe('image/jpeg');
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(leaf)).toBe(true);
  });

  it('forwards a checked form as the upload it is, whatever query it carries (never ?delete)', async () => {
    const other = freshKey();
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: other, Body: leaf }));
    const key = freshKey();
    const { fields } = await presign(key);
    const res = await post(form(fields, leaf), `/${BUCKET}?delete`);
    expect(res.status, await res.text()).toBe(204);
    expect(await stored(key)).toBe(true);
    expect(await stored(other)).toBe(true);
  });

  it('refuses a different Content-Type', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    await expectRefused(await post(form({ ...fields, 'Content-Type': 'image/png' }, leaf)), 403, 'AccessDenied', /Policy Condition failed: \["eq", "\$Content-Type", "image\/jpeg"\]/);
    expect(await stored(key)).toBe(false);
  });

  it('refuses a file larger than the content-length-range (S3 answers 400 EntityTooLarge)', async () => {
    const key = freshKey();
    const { fields } = await presign(key, leaf.length - 1);
    const res = await post(form(fields, leaf));
    await expectRefused(res, 400, 'EntityTooLarge', new RegExp(`<ProposedSize>${leaf.length}</ProposedSize><MaxSizeAllowed>${leaf.length - 1}</MaxSizeAllowed>`));
    expect(await stored(key)).toBe(false);
  });

  it('refuses an expired policy', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    now = new Date(Date.now() + 301_000);
    await expectRefused(await post(form(fields, leaf)), 403, 'AccessDenied', /Policy expired/);
    expect(await stored(key)).toBe(false);
  });

  it('refuses a key other than the signed one', async () => {
    const key = freshKey();
    const other = 'uploads/someone-else/avatar';
    const { fields } = await presign(key);
    await expectRefused(await post(form({ ...fields, key: other }, leaf)), 403, 'AccessDenied', /Policy Condition failed: \{"key":/);
    expect(await stored(key)).toBe(false);
    expect(await stored(other)).toBe(false);
  });

  it('refuses a policy rewritten by the client (the signature covers it)', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    const forged = Buffer.from(JSON.stringify({ expiration: '2099-01-01T00:00:00Z', conditions: [['starts-with', '$key', '']] })).toString('base64');
    const res = await post(form({ ...fields, Policy: forged, key: 'anything/at/all' }, leaf));
    await expectRefused(res, 403, 'SignatureDoesNotMatch');
    expect(await stored('anything/at/all')).toBe(false);
  });

  it('refuses form fields the policy does not mention, repeated fields and a missing policy', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    await expectRefused(await post(form(fields, leaf, [['x-amz-meta-owner', 'me']])), 403, 'AccessDenied', /Extra input fields: x-amz-meta-owner/);
    await expectRefused(await post(form(fields, leaf, [['key', 'uploads/p-guard/other']])), 400, 'InvalidArgument', /appears more than once/);
    const { Policy: _policy, ...unsigned } = fields;
    await expectRefused(await post(form(unsigned, leaf)), 403, 'AccessDenied');
    expect(await stored(key)).toBe(false);
  });

  it('ignores fields after the file, as S3 and s3rver do', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    const body = form(fields, leaf);
    body.append('key', 'uploads/p-guard/after-the-file');
    const res = await post(body);
    expect(res.status, await res.text()).toBe(204);
    expect(await stored(key)).toBe(true);
    expect(await stored('uploads/p-guard/after-the-file')).toBe(false);
  });

  it('refuses bodies over its cap without parsing them', async () => {
    const key = freshKey();
    const { fields } = await presign(key, 10 * 1024 * 1024);
    await expectRefused(await post(form(fields, new Uint8Array(300 * 1024))), 400, 'EntityTooLarge');
    expect(await stored(key)).toBe(false);
  });

  it('refuses every request but a form POST, as S3 refuses anonymous ones', async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    expect((await post(form(fields, leaf))).status).toBe(204);
    const object = `${guardUrl}/${BUCKET}/${key}`;
    await expectRefused(await fetch(object), 403, 'AccessDenied');
    await expectRefused(await fetch(object, { method: 'DELETE' }), 403, 'AccessDenied');
    const planted = `${guardUrl}/${BUCKET}/avatars/p-guard/planted/64.webp`;
    await expectRefused(await fetch(planted, { method: 'PUT', body: leaf, headers: { 'content-type': 'image/webp' } }), 403, 'AccessDenied');
    // POSTs that are not browser form uploads: DeleteObjects and CreateMultipartUpload.
    const deleteObjects = `<Delete><Object><Key>${key}</Key></Object></Delete>`;
    await expectRefused(await fetch(`${guardUrl}/${BUCKET}?delete`, { method: 'POST', body: deleteObjects, headers: { 'content-type': 'application/xml' } }), 403, 'AccessDenied');
    await expectRefused(await fetch(`${planted}?uploads`, { method: 'POST' }), 403, 'AccessDenied');
    expect(await stored(key)).toBe(true);
    expect(await stored('avatars/p-guard/planted/64.webp')).toBe(false);
  });

  it("passes a presigned GET of an upload to s3rver, which checks its signature for the host and path it was signed for", async () => {
    const key = freshKey();
    const { fields } = await presign(key);
    expect((await post(form(fields, leaf))).status).toBe(204);
    // Signed for s3rver as the services reach it; asked through the guard, which keeps that host and path.
    const signed = new URL(await getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 60 }));
    const through = (url: URL) => fetch(`${guardUrl}${url.pathname}${url.search}`);
    const res = await through(signed);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(leaf)).toBe(true);
    // Another key under the same signature, or a forged signature: s3rver refuses it.
    const otherKey = new URL(signed);
    otherKey.pathname = `/${BUCKET}/${freshKey()}`;
    expect((await through(otherKey)).status).toBe(403);
    const forged = new URL(signed);
    forged.searchParams.set('X-Amz-Signature', '0'.repeat(64));
    expect((await through(forged)).status).toBe(403);
    // Outside uploads/, or unsigned: refused by the guard itself.
    await expectRefused(await fetch(`${guardUrl}/${BUCKET}/${key}`), 403, 'AccessDenied');
  });
});
