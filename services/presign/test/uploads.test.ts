import { readFile } from 'node:fs/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadIdSchema } from '@avatar-pipeline/kit/events';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import type { Service } from '@avatar-pipeline/kit/service';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { BUCKET, TABLE, createKeys, presign, requestUpload, startBackends, uploadForm, type Backends, type Keys } from './support.js';

interface Ticket {
  uploadId: string;
  method: string;
  url: string;
  fields: Record<string, string>;
  expiresAt: string;
  maxBytes: number;
}

describe('POST /v1/uploads', () => {
  let backends: Backends;
  let keys: Keys;
  let service: Service;
  let leaf: Buffer;

  beforeAll(async () => {
    backends = await startBackends();
    keys = await createKeys();
    service = presign(backends, keys);
    leaf = await readFile(new URL('../../../fixtures/photos/leaf.jpg', import.meta.url));
  });
  afterAll(async () => {
    await backends?.close();
  });

  async function ticketFor(playerId: string, body: unknown): Promise<Ticket> {
    const res = await requestUpload(service.app, await keys.token(playerId), body);
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Ticket;
  }

  const stored = (key: string) => s3Objects(backends.s3, BUCKET).exists(key);

  async function issuedCount(contentType: string): Promise<number> {
    const metric = await service.metrics.registry.getSingleMetric('avatarpipeline_presign_uploads_issued_total')?.get();
    return metric?.values.find((v) => v.labels['content_type'] === contentType)?.value ?? 0;
  }

  it('issues a presigned POST a browser can upload a real photo with', async () => {
    const before = Date.now();
    const res = await requestUpload(service.app, await keys.token('player-1'), { contentType: 'image/jpeg', contentLength: leaf.length });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const ticket = (await res.json()) as Ticket;

    expect(uploadIdSchema.safeParse(ticket.uploadId).success).toBe(true);
    const key = `uploads/player-1/${ticket.uploadId}`;
    expect(ticket).toMatchObject({ method: 'POST', url: `${backends.guardUrl}/${BUCKET}`, maxBytes: leaf.length });
    expect(ticket.fields).toMatchObject({ key, 'Content-Type': 'image/jpeg' });
    const policy = JSON.parse(Buffer.from(ticket.fields['Policy']!, 'base64').toString()) as { expiration: string; conditions: unknown[] };
    expect(policy.conditions).toEqual(
      expect.arrayContaining([{ key }, ['eq', '$Content-Type', 'image/jpeg'], ['content-length-range', 1, leaf.length], { bucket: BUCKET }]),
    );
    expect(ticket.expiresAt).toBe(policy.expiration);
    const lifetime = Date.parse(ticket.expiresAt) - before;
    expect(lifetime).toBeGreaterThan(298_000);
    expect(lifetime).toBeLessThanOrEqual(301_000);

    const pending = await new UploadStore(backends.doc, TABLE).get('player-1', ticket.uploadId);
    expect(pending).toMatchObject({ playerId: 'player-1', uploadId: ticket.uploadId, status: 'pending', contentType: 'image/jpeg', maxBytes: leaf.length });
    // The reconciler's clock for it starts at the ticket's expiry.
    const open = [];
    for await (const u of new UploadStore(backends.doc, TABLE).openUploads('pending')) if (u.uploadId === ticket.uploadId) open.push(u);
    expect(open).toEqual([expect.objectContaining({ openStatus: 'pending', openSince: new Date(ticket.expiresAt).toISOString() })]);

    const upload = await fetch(ticket.url, { method: ticket.method, body: uploadForm(ticket.fields, leaf, 'image/jpeg') });
    expect(upload.status, await upload.text()).toBe(204);
    const object = await backends.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(object.ContentType).toBe('image/jpeg');
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(leaf)).toBe(true);
    expect(await issuedCount('image/jpeg')).toBeGreaterThanOrEqual(1);
  });

  it('binds the upload to the announced content type and size (the guard refuses the rest)', async () => {
    const small = await ticketFor('player-2', { contentType: 'image/jpeg', contentLength: 1000 });
    const tooBig = await fetch(small.url, { method: 'POST', body: uploadForm(small.fields, leaf, 'image/jpeg') });
    expect(tooBig.status).toBe(400);
    expect(await tooBig.text()).toContain('<Code>EntityTooLarge</Code>');
    expect(await stored(small.fields['key']!)).toBe(false);

    const png = await ticketFor('player-2', { contentType: 'image/png', contentLength: leaf.length });
    const relabelled = await fetch(png.url, { method: 'POST', body: uploadForm(png.fields, leaf, 'image/jpeg', { 'Content-Type': 'image/jpeg' }) });
    expect(relabelled.status).toBe(403);
    expect(await relabelled.text()).toMatch(/Policy Condition failed: \["eq", "\$Content-Type", "image\/png"\]/);
    expect(await stored(png.fields['key']!)).toBe(false);
  });

  it('keeps every key under the caller’s own player id', async () => {
    const token = await keys.token('player-3');
    const chosen = await requestUpload(service.app, token, { contentType: 'image/jpeg', contentLength: 10, key: 'uploads/player-4/mine' });
    expect(chosen.status).toBe(400);
    expect(await chosen.json()).toMatchObject({ error: { code: 'invalid_request', message: expect.stringContaining('key') } });

    const mine = await ticketFor('player-3', { contentType: 'image/webp', contentLength: leaf.length });
    const theirs = await ticketFor('player-4', { contentType: 'image/webp', contentLength: leaf.length });
    expect(mine.fields['key']).toBe(`uploads/player-3/${mine.uploadId}`);
    expect(theirs.fields['key']).toBe(`uploads/player-4/${theirs.uploadId}`);
    expect(mine.uploadId).not.toBe(theirs.uploadId);

    // player-3 tries to write over player-4's upload with their own ticket.
    const hijack = await fetch(mine.url, { method: 'POST', body: uploadForm(mine.fields, leaf, 'image/webp', { key: theirs.fields['key']! }) });
    expect(hijack.status).toBe(403);
    expect(await stored(theirs.fields['key']!)).toBe(false);
  });

  it.each([
    ['image/gif', 'unsupported_content_type', /image\/jpeg, image\/png, image\/webp/],
    ['image/bmp', 'unsupported_content_type', /image\/jpeg, image\/png, image\/webp/],
    ['text/html', 'unsupported_content_type', /image\/jpeg, image\/png, image\/webp/],
  ])('refuses content type %s', async (contentType, code, message) => {
    const res = await requestUpload(service.app, await keys.token('player-5'), { contentType, contentLength: 100 });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code, message: expect.stringMatching(message) } });
  });

  it('refuses a contentLength above AVATAR_MAX_BYTES, and accepts exactly the maximum', async () => {
    const token = await keys.token('player-5');
    const over = await requestUpload(service.app, token, { contentType: 'image/png', contentLength: 5 * 1024 * 1024 + 1 });
    expect(over.status).toBe(400);
    expect(await over.json()).toEqual({ error: { code: 'too_large', message: 'contentLength must be at most 5242880 bytes (5 MiB)' } });
    const atMax = await requestUpload(service.app, token, { contentType: 'IMAGE/PNG', contentLength: 5 * 1024 * 1024 });
    expect(atMax.status).toBe(201);
    expect(((await atMax.json()) as Ticket).fields['Content-Type']).toBe('image/png');
  });

  it.each([
    ['a missing contentLength', { contentType: 'image/jpeg' }, /contentLength/],
    ['a missing contentType', { contentLength: 100 }, /contentType/],
    ['an unknown field', { contentType: 'image/jpeg', contentLength: 100, acl: 'public-read' }, /acl/],
    ['a zero contentLength', { contentType: 'image/jpeg', contentLength: 0 }, /contentLength/],
    ['a negative contentLength', { contentType: 'image/jpeg', contentLength: -5 }, /contentLength/],
    ['a fractional contentLength', { contentType: 'image/jpeg', contentLength: 10.5 }, /contentLength/],
    ['a contentLength given as a string', { contentType: 'image/jpeg', contentLength: '100' }, /contentLength/],
    ['an array body', [{ contentType: 'image/jpeg', contentLength: 100 }], /object/],
  ])('refuses %s with invalid_request', async (_name, body, message) => {
    const before = await issuedCount('image/jpeg');
    const res = await requestUpload(service.app, await keys.token('player-6'), body);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', message: expect.stringMatching(message) } });
    expect(await issuedCount('image/jpeg')).toBe(before);
  });

  it('refuses malformed JSON and non-JSON bodies', async () => {
    const token = await keys.token('player-6');
    const malformed = await requestUpload(service.app, token, '{"contentType": "image/jpeg", ');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'invalid_json' } });
    const form = await requestUpload(service.app, token, 'contentType=image/jpeg&contentLength=10', 'application/x-www-form-urlencoded');
    expect(form.status).toBe(415);
    expect(await form.json()).toMatchObject({ error: { code: 'unsupported_media_type' } });
  });

  it('answers unknown routes with JSON 404', async () => {
    const res = await service.app.request('/v1/uploads/elsewhere', { method: 'POST' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
  });

  it('reports ready when the table and the bucket answer', async () => {
    const res = await service.app.request('/readyz');
    expect(await res.json()).toEqual({ status: 'ok', checks: { table: 'ok', bucket: 'ok' } });
    const missing = presign(backends, keys, { objects: s3Objects(backends.s3, 'no-such-bucket') });
    const down = await missing.app.request('/readyz');
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ checks: { table: 'ok', bucket: 'failing' } });
  });

  it('returns the S3 endpoint itself when no public URL is configured', async () => {
    const direct = presign(backends, keys, { settings: { publicUrl: undefined } });
    const res = await requestUpload(direct.app, await keys.token('player-7'), { contentType: 'image/jpeg', contentLength: leaf.length });
    const ticket = (await res.json()) as Ticket;
    expect(ticket.url).toBe(`${backends.s3Endpoint}/${BUCKET}`);
  });
});
