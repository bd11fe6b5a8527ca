import type { MiddlewareHandler } from 'hono';
import { describe, expect, it } from 'vitest';
import { HttpError, unavailable } from '../src/errors.js';
import { rateLimit, type RateLimiter } from '../src/rate-limit.js';
import { createService, type AppEnv } from '../src/service.js';
import { captureLogs } from './helpers.js';

/** A limiter that allows `allowed` requests, then refuses; or one whose table fails. */
function fakeLimiter(behaviour: { allowed: number } | { fails: Error }): Pick<RateLimiter, 'scope' | 'enforce'> & { calls: string[] } {
  const calls: string[] = [];
  return {
    scope: 'things',
    calls,
    async enforce(subject: string) {
      calls.push(subject);
      if ('fails' in behaviour) throw behaviour.fails;
      if (calls.length > behaviour.allowed) {
        throw new HttpError(429, 'rate_limited', 'at most 1 things per 60 s; retry in 7 s', { 'Retry-After': '7' });
      }
      return { allowed: true, limit: behaviour.allowed, remaining: behaviour.allowed - calls.length, resetAt: new Date(), retryAfterSeconds: 7 };
    },
  };
}

/** Stands in for the bearer auth middleware. */
const asPlayer: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set('playerId', 'p-1');
  await next();
};

function app(limiter: Pick<RateLimiter, 'scope' | 'enforce'>, unavailableMessage?: string) {
  const logs = captureLogs('rl-test');
  const { app } = createService({ name: 'rl-test', logger: logs.logger });
  app.post('/things', asPlayer, rateLimit({ limiter, ...(unavailableMessage ? { unavailableMessage } : {}) }), (c) => c.json({ ok: true }, 201));
  return { app, logs };
}

describe('rateLimit middleware', () => {
  it('counts each request against the player, and answers 429 with Retry-After once the window is full', async () => {
    const limiter = fakeLimiter({ allowed: 1 });
    const { app: svc, logs } = app(limiter);
    expect((await svc.request('/things', { method: 'POST' })).status).toBe(201);
    const limited = await svc.request('/things', { method: 'POST' });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(await limited.json()).toEqual({ error: { code: 'rate_limited', message: 'at most 1 things per 60 s; retry in 7 s' } });
    expect(limiter.calls).toEqual(['p-1', 'p-1']);
    expect(logs.entries().filter((e) => e['msg'] === 'rate limited')).toEqual([
      expect.objectContaining({ level: 'info', playerId: 'p-1', scope: 'things', retryAfter: '7' }),
    ]);
    expect(logs.entries().some((e) => e['level'] === 'error' && e['msg'] !== 'request')).toBe(false);
  });

  it('answers 503 unavailable with Retry-After when the count cannot be checked, logging the cause once', async () => {
    const { app: svc, logs } = app(fakeLimiter({ fails: new Error('connection refused') }), 'things are unavailable right now');
    const res = await svc.request('/things', { method: 'POST' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'things are unavailable right now' } });
    const causes = logs.entries().filter((e) => e['msg'] === 'rate limit check failed');
    expect(causes).toEqual([expect.objectContaining({ playerId: 'p-1', scope: 'things', err: expect.objectContaining({ message: 'connection refused' }) })]);
    expect(logs.text()).not.toContain('unhandled error');
  });
});

describe('unavailable', () => {
  it('tells the caller no details and logs what failed, with its cause, once', async () => {
    const logs = captureLogs('u-test');
    const { app: svc } = createService({ name: 'u-test', logger: logs.logger });
    svc.get('/x', () => {
      throw unavailable('the widget could not be read', new Error('socket hang up'), { logFields: { widgetId: 'w-1' } });
    });
    const res = await svc.request('/x');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'the widget could not be read; try again shortly' } });
    const errors = logs.entries().filter((e) => e['level'] === 'error' && e['msg'] !== 'request');
    expect(errors).toEqual([
      expect.objectContaining({ msg: 'the widget could not be read', widgetId: 'w-1', err: expect.objectContaining({ message: 'socket hang up' }) }),
    ]);
  });
});
