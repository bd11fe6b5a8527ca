import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRoutes } from '@avatar-pipeline/kit/api-routes';
import { uploadBucketCorsRules } from '@avatar-pipeline/kit/cors';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { ServiceName } from '@avatar-pipeline/kit/topology';
import { createGateway } from '../src/gateway/gateway.js';
import { listen, type Listening } from '../src/listen.js';
import { mediaHandler, noneMatch } from '../src/stand-ins/media.js';
import { sinkDestination } from '../src/output/log-sink.js';
import { freePort } from '../src/ports.js';
import { createPostPolicyGuard } from '../src/stand-ins/post-policy.js';
import { BUCKET, startTestBackends, type S3Backend } from '../src/test-backends.js';

/** Answers with what it received, as a service behind the gateway would see it. */
function echo(name: string) {
  const app = new Hono();
  app.all('*', async (c) =>
    c.json({ name, method: c.req.method, url: c.req.url, headers: c.req.header(), body: await c.req.text() }, 200, { 'x-upstream': name }),
  );
  return app;
}

interface Echoed {
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

describe('gateway', () => {
  let backends: S3Backend;
  let client: S3Client;
  let presign: Listening;
  let gateway: Listening;
  let base: string;
  let deadPort: number;
  const logs: string[] = [];

  beforeAll(async () => {
    backends = await startTestBackends({ prefix: 'ap-gateway-', dynamo: false });
    client = backends.s3;
    presign = await listen('presign', echo('presign').fetch, 0);
    deadPort = await freePort();
    const upstreams: Partial<Record<ServiceName, string>> = {
      presign: `http://127.0.0.1:${presign.port}`,
      profile: `http://127.0.0.1:${deadPort}`,
    };
    const service = createGateway({
      logger: createLogger('gateway', 'info', sinkDestination((line) => logs.push(line))),
      upstream: (name) => upstreams[name],
      issuer: echo('issuer'),
      storage: echo('storage'),
      media: mediaHandler({ s3: client, bucket: BUCKET, mountPath: '/media/' }),
      maxBodyBytes: 1024,
    });
    gateway = await listen('gateway', service.app.fetch, 0);
    base = `http://127.0.0.1:${gateway.port}`;
  });
  afterAll(async () => {
    await gateway?.close();
    await presign?.close();
    await backends?.close();
  });

  it('forwards API calls with path, query, body, credentials and trace headers', async () => {
    const res = await fetch(`${base}/v1/uploads?x=1`, {
      method: 'POST',
      headers: { authorization: 'Bearer secret-token-value', 'content-type': 'application/json', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-request-id': 'req-123' },
      body: '{"contentType":"image/jpeg"}',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('presign');
    const seen = (await res.json()) as Echoed;
    expect(new URL(seen.url).pathname + new URL(seen.url).search).toBe('/v1/uploads?x=1');
    expect(seen.body).toBe('{"contentType":"image/jpeg"}');
    expect(seen.headers).toMatchObject({
      authorization: 'Bearer secret-token-value',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'x-request-id': 'req-123',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-host': `127.0.0.1:${gateway.port}`,
      'x-forwarded-proto': 'http',
    });
    expect(logs.some((l) => l.includes('req-123'))).toBe(true);
    expect(logs.some((l) => l.includes('secret-token-value'))).toBe(false);
  });

  it('gives each request an id the service sees too', async () => {
    const res = await fetch(`${base}/v1/uploads`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    const id = res.headers.get('x-request-id');
    expect(id).toBeTruthy();
    expect(((await res.json()) as Echoed).headers['x-request-id']).toBe(id);
  });

  it('answers 503 JSON for a service that is down or not part of the stack', async () => {
    const down = await fetch(`${base}/v1/players/p1/profile`);
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('1');
    expect(await down.json()).toEqual({ error: { code: 'service_unavailable', message: 'profile is not reachable right now' } });
    const absent = await fetch(`${base}/v1/push/subscriptions`, { method: 'POST' });
    expect(absent.status).toBe(503);
    expect(await absent.json()).toEqual({ error: { code: 'service_unavailable', message: 'subscribe is not running in this stack' } });
  });

  it("routes each of the kit's public API routes to its service, and internal paths nowhere", async () => {
    /** The service a request reached: presign echoes, profile is down, subscribe is absent. */
    const reached = async (res: Response) => res.headers.get('x-upstream') ?? ((await res.json()) as { error: { message: string } }).error.message.split(' ')[0];
    for (const route of apiRoutes) {
      const path = route.match === 'exact' ? route.path : `${route.path}x`;
      expect(await reached(await fetch(`${base}${path}`, { method: route.methods?.[0] ?? 'GET' })), path).toBe(route.service);
    }
    const notFound = [['GET', '/events'], ['POST', '/dead-letter'], ['POST', '/webhook'], ['GET', '/v1/pushx']] as const;
    for (const [method, path] of notFound) expect((await fetch(`${base}${path}`, { method })).status, `${method} ${path}`).toBe(404);
  });

  it('answers a method a route does not take with a JSON 405 and Allow, and OPTIONS itself, as the cluster gateway does', async () => {
    for (const [method, path, allow] of [['GET', '/v1/uploads', 'POST, OPTIONS'], ['POST', '/v1/uploads/x', 'GET, HEAD, OPTIONS'], ['PATCH', '/v1/push', 'GET, HEAD, POST, PUT, DELETE, OPTIONS']] as const) {
      const res = await fetch(`${base}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      expect(res.headers.get('x-upstream')).toBeNull();
      expect(await res.json()).toEqual({ error: { code: 'method_not_allowed', message: 'this method is not allowed on this route (see the Allow header)' } });
    }
    const options = await fetch(`${base}/v1/uploads`, { method: 'OPTIONS' });
    expect([options.status, options.headers.get('allow'), options.headers.get('x-upstream')]).toEqual([204, 'POST, OPTIONS', null]);
  });

  it('routes the issuer as is and storage without its /s3 prefix', async () => {
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as Echoed;
    expect([jwks.name, new URL(jwks.url).pathname]).toEqual(['issuer', '/.well-known/jwks.json']);
    const token = (await (await fetch(`${base}/dev/token`, { method: 'POST' })).json()) as Echoed;
    expect([token.name, new URL(token.url).pathname]).toEqual(['issuer', '/dev/token']);
    const upload = (await (await fetch(`${base}/s3/avatars`, { method: 'POST', body: 'form' })).json()) as Echoed;
    expect([upload.name, upload.method, new URL(upload.url).pathname, upload.body]).toEqual(['storage', 'POST', '/avatars', 'form']);
  });

  it('lets only POST (and its preflight) and GET through to storage (its guard checks them): any other method on /s3 is 405 with Allow', async () => {
    const preflight = (await (await fetch(`${base}/s3/avatars`, { method: 'OPTIONS' })).json()) as Echoed;
    expect([preflight.name, preflight.method, new URL(preflight.url).pathname]).toEqual(['storage', 'OPTIONS', '/avatars']);
    const read = (await (await fetch(`${base}/s3/avatars/uploads/p1/u?X-Amz-Signature=s`)).json()) as Echoed;
    expect([read.name, read.method, new URL(read.url).pathname, new URL(read.url).search]).toEqual(['storage', 'GET', '/avatars/uploads/p1/u', '?X-Amz-Signature=s']);
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const res = await fetch(`${base}/s3/avatars/avatars/p1/0196b7a4/64.webp`, { method, ...(method === 'PUT' || method === 'PATCH' ? { body: 'forged' } : {}) });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow'), method).toBe('GET, HEAD, POST, OPTIONS');
      expect(res.headers.get('x-upstream'), method).toBeNull();
      expect(await res.json(), method).toEqual({
        error: { code: 'method_not_allowed', message: `${method} is not allowed on /s3: uploads are presigned POSTs, reads presigned GETs` },
      });
    }
  });

  it('answers anything else with 404 JSON, and refuses oversized bodies', async () => {
    const res = await fetch(`${base}/v2/whatever`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    const big = await fetch(`${base}/s3/avatars`, { method: 'POST', body: 'x'.repeat(2048) });
    expect(big.status).toBe(413);
  });

  describe('/media', () => {
    const key = 'avatars/p1/0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b/64.webp';

    beforeAll(async () => {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'webp bytes', ContentType: 'image/webp', CacheControl: 'public, max-age=31536000, immutable' }));
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'uploads/p1/x', Body: 'original', ContentType: 'image/jpeg' }));
    });

    it('serves avatars publicly with their headers, and 304 for a known ETag', async () => {
      const res = await fetch(`${base}/media/${key}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('webp bytes');
      expect(res.headers.get('content-type')).toBe('image/webp');
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const etag = res.headers.get('etag')!;
      expect(etag).toMatch(/^"[0-9a-f]{32}"$/);

      const cached = await fetch(`${base}/media/${key}`, { headers: { 'if-none-match': `"other", W/${etag}` } });
      expect(cached.status).toBe(304);
      expect(cached.headers.get('etag')).toBe(etag);
      expect(cached.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect((await fetch(`${base}/media/${key}`, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);

      const head = await fetch(`${base}/media/${key}`, { method: 'HEAD' });
      expect([head.status, head.headers.get('content-length'), head.headers.get('etag')]).toEqual([200, '10', etag]);
    });

    it('never serves anything outside avatars/', async () => {
      for (const path of ['uploads/p1/x', 'avatars/../uploads/p1/x', 'avatars/..%2Fuploads/p1/x', 'avatars%2F..%2Fuploads/p1/x', 'avatars/p1/nope.webp', 'avatars']) {
        const res = await fetch(`${base}/media/${path}`);
        expect(res.status, path).toBe(404);
        expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no such media' } });
      }
      expect((await fetch(`${base}/media/${key}`, { method: 'DELETE' })).status).toBe(404);
    });
  });
});

describe('gateway CORS (CORS_ORIGINS)', () => {
  const game = 'http://game.test:3000';
  const stranger = 'http://evil.test';
  let backends: S3Backend;
  let presign: Listening;
  let gateway: Listening;
  let base: string;
  const silent = createLogger('gateway', 'silent');

  beforeAll(async () => {
    // The real storage path: the policy guard in front of s3rver, which holds the bucket's CORS rule.
    backends = await startTestBackends({ prefix: 'ap-gateway-cors-', dynamo: false, s3: { cors: uploadBucketCorsRules([game]) } });
    presign = await listen('presign', echo('presign').fetch, 0);
    const service = createGateway({
      logger: silent,
      upstream: (name) => (name === 'presign' ? `http://127.0.0.1:${presign.port}` : undefined),
      issuer: echo('issuer'),
      storage: createPostPolicyGuard({ upstream: backends.s3Server.endpoint, logger: silent, corsOrigins: [game] }),
      media: (c) => c.notFound(),
      maxBodyBytes: 1024,
      corsOrigins: [game],
    });
    gateway = await listen('gateway', service.app.fetch, 0);
    base = `http://127.0.0.1:${gateway.port}`;
  });
  afterAll(async () => {
    await gateway?.close();
    await presign?.close();
    await backends?.close();
  });

  const preflight = (path: string, origin: string, method = 'POST') =>
    fetch(`${base}${path}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' } });

  it("answers an allowed origin's preflight with the route's methods, and no one else's", async () => {
    const res = await preflight('/v1/uploads', game);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(game);
    expect(res.headers.get('access-control-allow-methods')).toBe('POST');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toBe('authorization,content-type');
    expect(res.headers.get('access-control-max-age')).toBe('600');
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect((await preflight('/v1/players/me/avatar', game, 'DELETE')).headers.get('access-control-allow-methods')).toBe('GET,POST,PUT,DELETE');
    expect((await preflight('/dev/token', game)).headers.get('access-control-allow-origin')).toBe(game);
    const refused = await preflight('/v1/uploads', stranger);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('lets an allowed page read the answer and its Retry-After, and varies on Origin', async () => {
    const res = await fetch(`${base}/v1/uploads`, { method: 'POST', headers: { origin: game, 'content-type': 'application/json' }, body: '{}' });
    expect(res.headers.get('x-upstream')).toBe('presign');
    expect(res.headers.get('access-control-allow-origin')).toBe(game);
    expect(res.headers.get('access-control-expose-headers')).toBe('Retry-After,X-Request-Id');
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    const other = await fetch(`${base}/v1/uploads`, { method: 'POST', headers: { origin: stranger, 'content-type': 'application/json' }, body: '{}' });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it("answers upload preflights from the bucket's CORS rule, as S3 does, and refuses other origins", async () => {
    const res = await fetch(`${base}/s3/avatars`, { method: 'OPTIONS', headers: { origin: game, 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeTruthy();
    expect(res.headers.get('access-control-allow-methods')).toBe('POST');
    const other = await fetch(`${base}/s3/avatars`, { method: 'OPTIONS', headers: { origin: stranger, 'access-control-request-method': 'POST' } });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const put = await fetch(`${base}/s3/avatars`, { method: 'OPTIONS', headers: { origin: game, 'access-control-request-method': 'PUT' } });
    expect(put.status).toBe(403);
  });

  it("lets an allowed page read why the guard refused its upload", async () => {
    const form = new FormData();
    form.set('key', 'uploads/p1/x');
    form.set('file', new Blob(['x']), 'x.jpg');
    const res = await fetch(`${base}/s3/avatars`, { method: 'POST', headers: { origin: game }, body: form });
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBe(game);
    expect(await res.text()).toContain('<Code>AccessDenied</Code>');
    const other = await fetch(`${base}/s3/avatars`, { method: 'POST', headers: { origin: stranger }, body: form });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('sets no CORS header at all without CORS_ORIGINS', async () => {
    const plain = createGateway({ logger: silent, upstream: () => undefined, issuer: echo('issuer'), storage: echo('storage'), media: (c) => c.notFound(), maxBodyBytes: 1024 });
    const res = await plain.app.request('/v1/uploads', { method: 'OPTIONS', headers: { origin: game, 'access-control-request-method': 'POST' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('noneMatch', () => {
  it('compares weakly, in lists, and with *', () => {
    expect(noneMatch('"a"', '"a"')).toBe(true);
    expect(noneMatch('W/"a"', '"a"')).toBe(true);
    expect(noneMatch('"b", "a"', '"a"')).toBe(true);
    expect(noneMatch('*', '"a"')).toBe(true);
    expect(noneMatch('"b"', '"a"')).toBe(false);
    expect(noneMatch(undefined, '"a"')).toBe(false);
  });
});
