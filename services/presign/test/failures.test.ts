import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { Service } from '@avatar-pipeline/kit/service';
import { presignStores } from '../src/index.js';
import { TABLE, createKeys, presign, requestUpload, startBackends, type Backends, type Keys } from './support.js';

const body = { contentType: 'image/webp', contentLength: 4096 };

/** A pino destination that keeps every line. */
function captureLines() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

async function issued(service: Service): Promise<number> {
  const metric = await service.metrics.registry.getSingleMetric('avatarpipeline_presign_uploads_issued_total')?.get();
  return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

describe('presign when things go wrong', () => {
  let backends: Backends;
  let keys: Keys;

  beforeAll(async () => {
    backends = await startBackends();
    keys = await createKeys();
  });
  afterAll(async () => {
    await backends?.close();
  });

  /** The stores on dynalite, with the pending record's write failing as `err`. */
  function pendingWriteFails(err: Error) {
    const stores = presignStores(backends.doc, TABLE);
    const createPending = vi.spyOn(stores.uploads, 'createPending').mockRejectedValue(err);
    return { stores, createPending };
  }

  it('answers 503 and issues nothing when the pending record cannot be written', async () => {
    const { stores, createPending } = pendingWriteFails(Object.assign(new Error('throughput exceeded'), { name: 'ProvisionedThroughputExceededException' }));
    const service = presign(backends, keys, { stores });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'uploads are unavailable right now; try again shortly' } });
    expect(createPending).toHaveBeenCalledTimes(1);
    expect(await issued(service)).toBe(0);
  });

  it('answers 503 without recording anything when the rate limit cannot be checked', async () => {
    const stores = presignStores(backends.doc, TABLE);
    const createPending = vi.spyOn(stores.uploads, 'createPending');
    const unreachable = { ...stores, rateLimiter: ({ scope }: { scope: string }) => ({ scope, enforce: () => Promise.reject(new Error('connection refused')) }) };
    const service = presign(backends, keys, { stores: unreachable });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'uploads are unavailable right now; try again shortly' } });
    expect(createPending).not.toHaveBeenCalled();
    expect(await issued(service)).toBe(0);
  });

  it('answers 503 and records nothing when the upload cannot be signed', async () => {
    const stores = presignStores(backends.doc, TABLE);
    const createPending = vi.spyOn(stores.uploads, 'createPending');
    const service = presign(backends, keys, { stores, signer: { sign: () => Promise.reject(new Error('no credentials')) } });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(createPending).not.toHaveBeenCalled();
    expect(await issued(service)).toBe(0);
  });

  it('never writes the bearer token to the logs', async () => {
    const { lines, stream } = captureLines();
    const service = presign(backends, keys, { logger: createLogger('presign', 'trace', stream) });
    const good = await keys.token('player-logs');
    const wrongAudience = await keys.token('player-logs', { aud: 'elsewhere' });
    const expired = await keys.token('player-logs', { exp: Math.floor(Date.now() / 1000) - 60 });

    expect((await requestUpload(service.app, good, body)).status).toBe(201);
    expect((await requestUpload(service.app, wrongAudience, body)).status).toBe(401);
    expect((await requestUpload(service.app, expired, body)).status).toBe(401);
    expect((await requestUpload(service.app, good, { ...body, contentType: 'image/gif' })).status).toBe(400);
    const inQuery = await service.app.request(`/v1/uploads?access_token=${good}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(inQuery.status).toBe(401);

    const broken = presign(backends, keys, { stores: pendingWriteFails(new Error('table gone')).stores, logger: createLogger('presign', 'trace', stream) });
    expect((await requestUpload(broken.app, good, body)).status).toBe(503);

    expect(lines.some((line) => line.includes('"msg":"upload issued"'))).toBe(true);
    expect(lines.some((line) => line.includes('"status":401'))).toBe(true);
    expect(lines.some((line) => line.includes('recording the pending upload failed'))).toBe(true);
    for (const token of [good, wrongAudience, expired]) {
      const signature = token.split('.')[2]!;
      for (const line of lines) {
        expect(line).not.toContain(token);
        expect(line).not.toContain(signature);
      }
    }
  });
});
