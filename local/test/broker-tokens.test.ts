import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { eventAudience, type Destination, type ServiceName } from '@avatar-pipeline/kit/topology';
import { cachedTokens, createDevIssuer, TOKEN_REUSE_MS } from '../src/index.js';

const to = (service: ServiceName): Destination => ({ service, path: '/events' });

describe('local broker: OIDC tokens reused per service (as Knative caches them)', () => {
  it('mints once per service and period, and again once the period is over', async () => {
    let clock = 1_000;
    const minted: string[] = [];
    const tokens = cachedTokens(
      async ({ service }) => {
        minted.push(service);
        return `${service}-${minted.length}`;
      },
      { maxAgeMs: 60_000, now: () => clock },
    );
    expect(await tokens(to('moderate'))).toBe('moderate-1');
    expect(await tokens(to('moderate'))).toBe('moderate-1');
    expect(await tokens(to('thumbnail'))).toBe('thumbnail-2');
    clock += 59_999;
    expect(await tokens(to('moderate'))).toBe('moderate-1');
    clock += 1;
    expect(await tokens(to('moderate'))).toBe('moderate-3');
    expect(minted).toEqual(['moderate', 'thumbnail', 'moderate']);
  });

  it('shares one mint between concurrent attempts and keeps no failed one', async () => {
    let calls = 0;
    let fail = true;
    const tokens = cachedTokens(
      async () => {
        calls += 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (fail) throw new Error('issuer down');
        return `t${calls}`;
      },
      { maxAgeMs: 60_000 },
    );
    const first = await Promise.allSettled([tokens(to('push')), tokens(to('push'))]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(calls).toBe(1);
    fail = false;
    expect(await tokens(to('push'))).toBe('t2');
    expect(await tokens(to('push'))).toBe('t2');
  });

  it("reuses tokens well inside the dev issuer's lifetime, each still for its own service only", async () => {
    const issuer = await createDevIssuer({ issuer: 'http://localhost:8080', audience: 'avatar-pipeline', logger: createLogger('t', 'silent') });
    const audienceOf = (service: ServiceName) => eventAudience('avatar-pipeline', service);
    const tokens = cachedTokens(({ service }) => issuer.mintFor(audienceOf(service), 'local-broker'), { maxAgeMs: TOKEN_REUSE_MS });
    const keys = createLocalJWKSet({ keys: [issuer.publicJwk] });
    const token = await tokens(to('thumbnail'));
    const { payload } = await jwtVerify(token, keys, { issuer: 'http://localhost:8080', audience: audienceOf('thumbnail') });
    // Reused for at most TOKEN_REUSE_MS, it has most of its lifetime left whenever it is sent.
    expect(payload.exp! * 1000 - Date.now() - TOKEN_REUSE_MS).toBeGreaterThan(50 * 60_000);
    await expect(jwtVerify(token, keys, { issuer: 'http://localhost:8080', audience: audienceOf('profile') })).rejects.toThrow(/aud/);
    expect(await tokens(to('thumbnail'))).toBe(token);
  });
});
