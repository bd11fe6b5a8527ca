import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter, rateLimitKey } from '@avatar-pipeline/kit/rate-limit';
import type { Service } from '@avatar-pipeline/kit/service';
import { TABLE, createKeys, presign, requestUpload, startBackends, type Backends, type Keys } from './support.js';

const body = { contentType: 'image/png', contentLength: 2048 };

describe('per-player upload rate limit', () => {
  let backends: Backends;
  let keys: Keys;
  let now: Date;
  let service: Service;

  beforeAll(async () => {
    backends = await startBackends();
    keys = await createKeys();
    service = presign(backends, keys, { clock: () => now, settings: { rateLimit: { uploads: 3, windowSeconds: 60 } } });
  });
  afterAll(async () => {
    await backends?.close();
  });

  const attempt = async (playerId: string) => requestUpload(service.app, await keys.token(playerId), body);

  it('answers 429 with Retry-After once the window is full, and resets in the next window', async () => {
    now = new Date('2030-01-01T00:00:10Z');
    for (let i = 0; i < 3; i++) expect((await attempt('player-rate')).status).toBe(201);

    const limited = await attempt('player-rate');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('50');
    expect(await limited.json()).toEqual({ error: { code: 'rate_limited', message: 'at most 3 uploads per 60 s; retry in 50 s' } });

    // Other players have their own windows.
    expect((await attempt('player-other')).status).toBe(201);

    now = new Date('2030-01-01T00:00:59.500Z');
    const stillLimited = await attempt('player-rate');
    expect(stillLimited.status).toBe(429);
    expect(stillLimited.headers.get('retry-after')).toBe('1');

    now = new Date('2030-01-01T00:01:00Z');
    expect((await attempt('player-rate')).status).toBe(201);

    const metric = await service.metrics.registry.getSingleMetric('avatarpipeline_rate_limited_total')?.get();
    expect(metric?.values).toEqual([expect.objectContaining({ labels: { scope: 'uploads' }, value: 2 })]);
  });

  it('keeps the count in the table, so it holds across replicas', async () => {
    now = new Date('2030-02-01T00:00:00Z');
    const replicaA = service;
    const replicaB = presign(backends, keys, { clock: () => now, settings: { rateLimit: { uploads: 3, windowSeconds: 60 } } });
    for (const replica of [replicaA, replicaB, replicaA]) {
      expect((await requestUpload(replica.app, await keys.token('player-shared'), body)).status).toBe(201);
    }
    expect((await requestUpload(replicaB.app, await keys.token('player-shared'), body)).status).toBe(429);

    const { Item } = await backends.doc.send(
      new GetCommand({ TableName: TABLE, Key: { pk: 'RATE#uploads#player-shared', sk: '2030-02-01T00:00:00.000Z' } }),
    );
    // Refused attempts are not counted; the item expires one window after its own ends.
    expect(Item).toEqual({
      pk: 'RATE#uploads#player-shared',
      sk: '2030-02-01T00:00:00.000Z',
      count: 3,
      expiresAt: Date.parse('2030-02-01T00:01:00Z') / 1000 + 60,
    });
  });

  it('reports what is left of the window', async () => {
    now = new Date('2030-03-01T00:00:30Z');
    const limiter = new RateLimiter(backends.doc, TABLE, { scope: 'probe', limit: 2, windowSeconds: 60, clock: () => now });
    expect(await limiter.consume('p')).toMatchObject({ allowed: true, remaining: 1, retryAfterSeconds: 30, resetAt: new Date('2030-03-01T00:01:00Z') });
    expect(await limiter.consume('p')).toMatchObject({ allowed: true, remaining: 0 });
    expect(await limiter.consume('p')).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 30 });
    expect(rateLimitKey('probe', 'p', new Date('2030-03-01T00:00:00Z'))).toEqual({ pk: 'RATE#probe#p', sk: '2030-03-01T00:00:00.000Z' });
    expect(() => new RateLimiter(backends.doc, TABLE, { scope: 'x', limit: 0, windowSeconds: 60 })).toThrow(RangeError);
  });
});
