import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { HttpError } from '../src/errors.js';
import { runService } from '../src/server.js';
import { createService, type ReadinessCheck } from '../src/service.js';
import { jsonBody, parseParam } from '../src/validation.js';
import { captureLogs } from './helpers.js';

function service(readiness?: Record<string, ReadinessCheck>, bodyLimitBytes?: number) {
  const logs = captureLogs('svc-test');
  const svc = createService({
    name: 'svc-test',
    logger: logs.logger,
    ...(readiness ? { readiness } : {}),
    ...(bodyLimitBytes ? { bodyLimitBytes } : {}),
  });
  return { svc, logs };
}

const json = (body: unknown, contentType = 'application/json') => ({
  method: 'POST',
  headers: { 'content-type': contentType },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

async function errorOf(res: Response) {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

/** Parses `avatarpipeline_http_request_duration_seconds_count` series into `method route status` -> count. */
async function requestCounts(svc: ReturnType<typeof service>['svc']): Promise<Map<string, number>> {
  const text = await (await svc.app.request('/metrics')).text();
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^avatarpipeline_http_request_duration_seconds_count\{([^}]*)\} (\d+)$/gm)) {
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]));
    counts.set(`${labels['method']} ${labels['route']} ${labels['status']}`, Number(m[2]));
  }
  return counts;
}

describe('createService health', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('serves /healthz', async () => {
    const res = await service().svc.app.request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('serves /readyz when every check passes', async () => {
    const res = await service({ table: async () => 'fine', bucket: () => Promise.resolve() }).svc.app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', checks: { table: 'ok', bucket: 'ok' } });
  });

  it('answers 503 naming the failing check, and logs why', async () => {
    const { svc, logs } = service({
      table: async () => undefined,
      bucket: async () => {
        throw new Error('NoSuchBucket');
      },
    });
    const res = await svc.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', checks: { table: 'ok', bucket: 'failing' } });
    expect(logs.entries()).toContainEqual(expect.objectContaining({ check: 'bucket', err: 'NoSuchBucket', msg: 'readiness check failed' }));
  });

  it('treats a check that throws synchronously as failing', async () => {
    const res = await service({
      broken: () => {
        throw new Error('sync');
      },
    }).svc.app.request('/readyz');
    expect(res.status).toBe(503);
  });

  it('times out a hanging check', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { svc } = service({ hangs: () => new Promise(() => undefined), fine: async () => undefined });
    const pending = svc.app.request('/readyz');
    await vi.advanceTimersByTimeAsync(1999);
    let settled = false;
    void Promise.resolve(pending).then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const res = await pending;
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', checks: { hangs: 'failing', fine: 'ok' } });
  });

  it('reports draining once shutdown has begun', async () => {
    const { svc } = service({ fine: async () => undefined });
    svc.lifecycle.draining = true;
    const res = await svc.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'draining' });
  });
});

describe('createService metrics', () => {
  it('labels request durations by route pattern, and unknown routes as unmatched', async () => {
    const { svc } = service();
    svc.app.get('/v1/uploads/:id', (c) => (c.req.param('id') === 'missing' ? c.json({}, 404) : c.json({ id: c.req.param('id') })));
    svc.app.use('/v1/private/*', async (_c, next) => next());
    await svc.app.request('/v1/uploads/a');
    await svc.app.request('/v1/uploads/b');
    await svc.app.request('/v1/uploads/missing');
    await svc.app.request('/nowhere/1');
    await svc.app.request('/nowhere/2');
    await svc.app.request('/v1/private/x');
    await svc.app.request('/v1/uploads/a', { method: 'DELETE' });
    const counts = await requestCounts(svc);
    expect(counts.get('GET /v1/uploads/:id 200')).toBe(2);
    expect(counts.get('GET /v1/uploads/:id 404')).toBe(1);
    expect(counts.get('GET unmatched 404')).toBe(3);
    expect(counts.get('DELETE unmatched 404')).toBe(1);
    for (const key of counts.keys()) expect(key).not.toMatch(/\/v1\/uploads\/[ab]|nowhere|private/);
  });

  it('exposes default process metrics with the service label', async () => {
    const res = await service().svc.app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toMatch(/^process_cpu_user_seconds_total\{service="svc-test"\} /m);
  });
});

describe('createService errors', () => {
  it('answers unknown routes with 404 JSON', async () => {
    const res = await service().svc.app.request('/nope', { method: 'POST' });
    expect(res.status).toBe(404);
    expect(await errorOf(res)).toEqual({ code: 'not_found', message: 'no route for POST /nope' });
  });

  it('renders a thrown HttpError with its status, code and headers', async () => {
    const { svc, logs } = service();
    svc.app.get('/limited', () => {
      throw new HttpError(429, 'rate_limited', 'slow down', { 'Retry-After': '30' });
    });
    const res = await svc.app.request('/limited');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(await errorOf(res)).toEqual({ code: 'rate_limited', message: 'slow down' });
    expect(logs.entries().some((e) => e['msg'] === 'unhandled error')).toBe(false);
  });

  it('hides unknown errors behind an opaque 500 and logs them', async () => {
    const { svc, logs } = service();
    svc.app.get('/boom', () => {
      throw new Error('database password is hunter2');
    });
    const res = await svc.app.request('/boom', { headers: { 'x-request-id': 'req-123' } });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal', message: 'internal error' } });
    expect(text).not.toContain('hunter2');
    const logged = logs.entries().find((e) => e['msg'] === 'unhandled error');
    expect(logged).toMatchObject({ level: 'error', reqId: 'req-123', err: { message: 'database password is hunter2' } });
    expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'request', route: '/boom', status: 500, level: 'error' }));
    expect((await requestCounts(svc)).get('GET /boom 500')).toBe(1);
  });

  it('echoes a sane request id and logs it', async () => {
    const { svc, logs } = service();
    const res = await svc.app.request('/healthz', { headers: { 'x-request-id': 'abc-1' } });
    expect(res.headers.get('x-request-id')).toBe('abc-1');
    expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'request', reqId: 'abc-1', path: '/healthz' }));
  });
});

describe('request validation', () => {
  const schema = z.object({ name: z.string().min(1), size: z.number().int().positive() });

  function validated(bodyLimitBytes?: number) {
    const made = service(undefined, bodyLimitBytes);
    made.svc.app.post('/things', jsonBody(schema), (c) => c.json({ got: c.get('body') }, 201));
    made.svc.app.get('/things/:id', (c) => c.json({ id: parseParam(z.uuid(), c.req.param('id'), 404, 'thing_not_found') }));
    made.svc.app.get('/search', (c) => c.json({ n: parseParam(z.coerce.number().int().max(10), c.req.query('n')) }));
    return made.svc;
  }

  it('passes a valid body through, parsed', async () => {
    const res = await validated().app.request('/things', json({ name: 'a', size: 2, extra: true }));
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ got: { name: 'a', size: 2 } });
  });

  it('accepts +json media types with parameters', async () => {
    const res = await validated().app.request('/things', json({ name: 'a', size: 2 }, 'application/merge-patch+json; charset=utf-8'));
    expect(res.status).toBe(201);
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    const res = await validated().app.request('/things', json('{"name":'));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('invalid_json');
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp', ''])('answers content type %j with 415', async (type) => {
    const init = json({ name: 'a', size: 2 }, type);
    if (!type) delete (init.headers as Record<string, string>)['content-type'];
    const res = await validated().app.request('/things', init);
    expect(res.status).toBe(415);
    expect((await errorOf(res)).code).toBe('unsupported_media_type');
  });

  it('answers a schema failure with 400 invalid_request naming each field', async () => {
    const res = await validated().app.request('/things', json({ name: '', size: 'big' }));
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^name: .+; size: .+$/);
  });

  it('answers a body over the limit with 413 JSON, with or without a content length', async () => {
    const svc = validated(100);
    const big = JSON.stringify({ name: 'x'.repeat(200), size: 1 });
    const declared = await svc.app.request('/things', json(big));
    expect(declared.status).toBe(413);
    expect((await errorOf(declared)).code).toBe('payload_too_large');
    const chunks = [big.slice(0, 60), big.slice(60)];
    const streamed = await svc.app.request('/things', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(new TextEncoder().encode(next));
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await errorOf(streamed)).code).toBe('payload_too_large');
    expect((await svc.app.request('/things', json({ name: 'ok', size: 1 }))).status).toBe(201);
  });

  it('applies the body limit over HTTP too: declared lengths from the header, chunked bodies as read', async () => {
    const svc = validated(100);
    svc.app.get('/plain', (c) => c.json({ ok: true }));
    const running = await runService(svc, { port: 0, hostname: '127.0.0.1', graceMs: 1000 });
    try {
      const url = `http://127.0.0.1:${running.port}`;
      const big = JSON.stringify({ name: 'x'.repeat(200), size: 1 });
      const declared = await fetch(`${url}/things`, json(big));
      expect(declared.status).toBe(413);
      expect((await errorOf(declared)).code).toBe('payload_too_large');
      const chunked = (body: string) =>
        fetch(`${url}/things`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(body));
              controller.close();
            },
          }),
          duplex: 'half',
        } as RequestInit);
      const streamed = await chunked(big);
      expect(streamed.status).toBe(413);
      expect((await errorOf(streamed)).code).toBe('payload_too_large');
      expect((await chunked(JSON.stringify({ name: 'ok', size: 1 }))).status).toBe(201);
      const small = await fetch(`${url}/things`, json({ name: 'ok', size: 1 }));
      expect(small.status).toBe(201);
      expect(await small.json()).toEqual({ got: { name: 'ok', size: 1 } });
      expect((await fetch(`${url}/plain`)).status).toBe(200);
    } finally {
      await running.close();
    }
  });

  it('validates parameters with 400 or 404', async () => {
    const svc = validated();
    const notFound = await svc.app.request('/things/not-a-uuid');
    expect(notFound.status).toBe(404);
    expect(await errorOf(notFound)).toEqual({ code: 'thing_not_found', message: 'not found' });
    const bad = await svc.app.request('/search?n=11');
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).code).toBe('invalid_request');
    expect(await (await svc.app.request('/search?n=3')).json()).toEqual({ n: 3 });
  });
});
