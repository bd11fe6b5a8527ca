/**
 * The cluster gateway's nginx configuration (cdk8s/src/gateway.ts) under Debian's real nginx
 * (/usr/sbin/nginx, `npm test` installs nginx-light first where it may): `nginx -t`, then nginx
 * serving it on loopback in front of stub services (node:http), asked with fetch. Everything nginx
 * answers itself is the API's JSON error (404, 405 with Allow, 413, 414, 502, 504); the services'
 * own answers pass through untouched; CORS headers go to the allowed origin only, on errors too,
 * and preflights are answered by nginx. Skips, saying so, when nginx is missing; fails on CI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AVATAR_PREFIX } from '@avatar-pipeline/kit/events';
import { BUCKET, startTestBackends, type S3Backend } from '@avatar-pipeline/local';
import { apiGatewayRoutes, corsOriginEntries, gatewayRoutes, nginxConfig, type Route } from '@avatar-pipeline/cdk8s';

const NGINX = '/usr/sbin/nginx';
const ALLOWED = 'https://game.example';
const ALSO_ALLOWED = 'http://localhost:8080';
const OTHER = 'https://elsewhere.example';
const missing = existsSync(NGINX) ? undefined : `${NGINX} is missing (apt-get install nginx-light)`;
/** On CI a missing nginx is a failure (beforeAll below), never a skip. */
const skipped = missing && !process.env['CI'] ? missing : undefined;

/** What the API stub saw: every request that reached a service. */
interface Seen {
  method: string;
  url: string;
  bodyBytes: number;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  // As a service would if it did CORS itself (MinIO does): the gateway must hide these.
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Allow-Credentials', 'true');
  res.setHeader('Content-Type', 'application/json');
  res.writeHead(status).end(JSON.stringify(body));
};

const corsHeaders = (res: Response) => [...res.headers.keys()].filter((name) => name.startsWith('access-control-'));

/** The stub services' own error bodies, which must reach the client byte for byte. */
const OWN_404 = { error: { code: 'not_found', message: 'no such player (from the service)' } };
const OWN_413 = { error: { code: 'payload_too_large', message: 'request body is too large (from the service)' } };

describe('nginxConfig', () => {
  it('builds the allowed origins fragment, and refuses what is not an origin', () => {
    expect(corsOriginEntries([ALLOWED, ALSO_ALLOWED])).toBe(`"${ALLOWED}" $http_origin;\n"${ALSO_ALLOWED}" $http_origin;`);
    expect(corsOriginEntries([])).toBe('');
    expect(() => corsOriginEntries(['https://game.example/'])).toThrow(/not an origin/);
    expect(() => corsOriginEntries(['https://game.example/play'])).toThrow(/not an origin/);
  });

  it('places the origins verbatim (a Helm expression in the chart) and holds no other Helm delimiter', () => {
    const routes = apiGatewayRoutes((service) => `http://${service}.ns.svc.cluster.local`);
    const helm = '{{- range .Values.gateway.corsOrigins }}\n  {{ . | quote }} $http_origin;\n{{- end }}';
    const conf = nginxConfig(routes, { resolver: 'kube-dns.kube-system.svc.cluster.local', corsOrigins: helm });
    expect(conf).toContain(`map $http_origin $cors_origin {\n  default "";\n${helm}\n}`);
    const concrete = nginxConfig(routes, { resolver: 'kube-dns.kube-system.svc.cluster.local', corsOrigins: corsOriginEntries([ALLOWED]) });
    expect(concrete).not.toMatch(/\{\{|\}\}/);
    // Upstreams are placed, not parsed: in the chart their namespace is a placeholder (cdk8s/src/helm.ts).
    const placeholder = '\uE0007\uE001';
    const placed = nginxConfig(
      apiGatewayRoutes((service) => `http://${service}.${placeholder}.svc.cluster.local`),
      { resolver: 'kube-dns.kube-system.svc.cluster.local', corsOrigins: '' },
    );
    expect(placed).toContain(`set $upstream_host presign.${placeholder}.svc.cluster.local;`);
    // Services' own error responses are never replaced.
    expect(concrete).not.toMatch(/^\s*proxy_intercept_errors\s+on/m);
    expect(concrete).not.toContain('limit_except');
  });
});

describe.skipIf(skipped)(`the gateway under Debian's nginx${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let dir = '';
  let mainConf = '';
  let nginx: ChildProcess | undefined;
  let nginxLog = '';
  let base = '';
  let storage: S3Backend | undefined;
  const servers: Server[] = [];
  const seen: Seen[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`${missing}: required on CI`);
    const api = createServer((req: IncomingMessage, res: ServerResponse) => {
      let bodyBytes = 0;
      req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', bodyBytes });
        if (req.url?.endsWith('/missing')) json(res, 404, OWN_404);
        else if (req.url?.endsWith('/too-big')) json(res, 413, OWN_413);
        else json(res, 200, { method: req.method, url: req.url, bodyBytes, requestId: req.headers['x-request-id'] });
      });
    });
    // Takes the request and never answers: nginx's read timeout gives 504.
    const slow = createServer(() => {});
    servers.push(api, slow);
    const apiUrl = await listen(api);
    const slowUrl = await listen(slow);
    // Nothing listens there: connection refused, 502.
    const downUrl = `http://127.0.0.1:${await freePort()}`;

    // The chart's /s3 route, to a stub here and, under another prefix, to s3rver (which checks signatures).
    const { when: _standIns, ...s3Route } = gatewayRoutes().find((r) => r.location === '^~ /s3/')!;
    storage = await startTestBackends({ prefix: 'gateway-s3-', dynamo: false });
    const routes: Route[] = [
      ...apiGatewayRoutes(() => apiUrl),
      // As gatewayRoutes on kind: browser uploads and presigned reads to MinIO (a larger body limit) and the CDN stand-in.
      { ...s3Route, upstream: apiUrl, maxBodySize: '6m' },
      { ...s3Route, location: '^~ /s3-signed/', rewrite: { from: '^/s3-signed/(.*)$', to: '/$1' }, upstream: storage.s3Server.endpoint, maxBodySize: '6m' },
      { location: `^~ /media/${AVATAR_PREFIX}`, upstream: apiUrl, rewrite: { from: '^/media/(.*)$', to: '/bucket/$1' }, methods: ['GET'] },
      { location: '^~ /slow/', upstream: slowUrl, methods: ['GET'] },
      { location: '^~ /down/', upstream: downUrl, methods: ['GET'] },
    ];
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const fragment = nginxConfig(routes, {
      // Every upstream here is an address: the resolver is never asked (nginx resolves a resolver's own name at start).
      resolver: '127.0.0.1',
      corsOrigins: corsOriginEntries([ALLOWED, ALSO_ALLOWED]),
      listen: `127.0.0.1:${port}`,
      proxyReadTimeout: '1s',
    });

    dir = await mkdtemp(join(tmpdir(), 'gateway-nginx-'));
    // As root, nginx's workers run as nobody: they must reach the temp paths below.
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'gateway.conf'), fragment);
    mainConf = join(dir, 'nginx.conf');
    // The nginx image's main configuration, reduced: the generated file is included in `http`.
    const temp = (name: string) => `  ${name}_temp_path ${join(dir, name)};`;
    await writeFile(
      mainConf,
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${join(dir, 'nginx.pid')};`,
        'error_log stderr warn;',
        'events {}',
        'http {',
        '  access_log off;',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp),
        `  include ${join(dir, 'gateway.conf')};`,
        '}',
        '',
      ].join('\n'),
    );

    nginx = spawn(NGINX, ['-p', dir, '-c', mainConf, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout?.on('data', (d: Buffer) => (nginxLog += d.toString()));
    nginx.stderr?.on('data', (d: Buffer) => (nginxLog += d.toString()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (nginx.exitCode !== null) throw new Error(`nginx exited (${nginx.exitCode}):\n${nginxLog}`);
      const up = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer on ${base}:\n${nginxLog}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx?.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await storage?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Asks the gateway; `origin` sets the Origin header. */
  const ask = (path: string, init: RequestInit & { origin?: string } = {}) => {
    const { origin, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (origin) headers.set('origin', origin);
    return fetch(`${base}${path}`, { ...rest, headers });
  };

  /** An error nginx generated: the API's JSON shape, never HTML. */
  async function expectApiError(res: Response, status: number, code: string) {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as unknown;
    expect(body).toEqual({ error: { code, message: expect.any(String) } });
  }

  it('passes nginx -t', () => {
    const result = spawnSync(NGINX, ['-t', '-p', dir, '-c', mainConf, '-e', 'stderr'], { encoding: 'utf8' });
    expect(result.stderr).toMatch(/syntax is ok/);
    expect(result.stderr).toMatch(/test is successful/);
    expect(result.status).toBe(0);
  });

  it('answers /healthz', async () => {
    const res = await ask('/healthz');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('proxies the API routes, GET and HEAD where GET is, with a request id', async () => {
    const res = await ask('/v1/uploads/u-1');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', url: '/v1/uploads/u-1', requestId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const head = await ask('/v1/uploads/u-1', { method: 'HEAD' });
    expect(head.status).toBe(200);
    const post = await ask('/v1/uploads', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"contentType":"image/jpeg"}' });
    expect(await post.json()).toMatchObject({ method: 'POST', url: '/v1/uploads', bodyBytes: 28 });
  });

  it('answers an unknown path with a JSON 404', async () => {
    await expectApiError(await ask('/nowhere'), 404, 'not_found');
    await expectApiError(await ask('/v1/uploadsx'), 404, 'not_found');
    await expectApiError(await ask('/events', { method: 'POST' }), 404, 'not_found');
  });

  it('answers a method a route does not take with a JSON 405 and Allow, without asking the service', async () => {
    const before = seen.length;
    const del = await ask('/v1/uploads', { method: 'DELETE' });
    expect(del.headers.get('allow')).toBe('POST, OPTIONS');
    await expectApiError(del, 405, 'method_not_allowed');
    const remove = await ask('/s3/bucket/key', { method: 'DELETE' });
    expect(remove.headers.get('allow')).toBe('POST, GET, HEAD, OPTIONS');
    await expectApiError(remove, 405, 'method_not_allowed');
    const put = await ask(`/media/${AVATAR_PREFIX}a.webp`, { method: 'PUT', body: 'x' });
    expect(put.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    await expectApiError(put, 405, 'method_not_allowed');
    // A kit route naming no methods takes every method a kit route can name.
    const patch = await ask('/v1/push/subscriptions', { method: 'PATCH', body: '{}' });
    expect(patch.headers.get('allow')).toBe('GET, HEAD, POST, PUT, DELETE, OPTIONS');
    await expectApiError(patch, 405, 'method_not_allowed');
    expect(seen.length).toBe(before);
    // Allow is on nginx's 405 and OPTIONS answers only.
    expect((await ask('/v1/uploads/u-1')).headers.get('allow')).toBeNull();
  });

  it('answers a body over the route limit with a JSON 413, and takes larger uploads on /s3', async () => {
    const big = new Uint8Array(100 * 1024);
    await expectApiError(await ask('/v1/uploads', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big }), 413, 'payload_too_large');
    const upload = await ask('/s3/bucket', { method: 'POST', body: new Uint8Array(2 * 1024 * 1024), origin: ALLOWED });
    expect(upload.status).toBe(200);
    expect(upload.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(await upload.json()).toMatchObject({ method: 'POST', url: '/bucket', bodyBytes: 2 * 1024 * 1024 });
    const media = await ask(`/media/${AVATAR_PREFIX}p/a.webp`);
    expect(await media.json()).toMatchObject({ method: 'GET', url: `/bucket/${AVATAR_PREFIX}p/a.webp` });
  });

  it("serves a presigned GET through /s3 as S3 signed it: the proxy keeps the signed host and path, and a forged one is refused", async () => {
    const key = 'uploads/p-gateway/0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b';
    await storage!.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'the original', ContentType: 'image/jpeg' }));
    // Signed as profile signs it (for S3 as the services reach it), asked at the public base (S3_PUBLIC_URL).
    const signed = new URL(await getSignedUrl(storage!.s3, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 60 }));
    const read = await ask(`/s3-signed${signed.pathname}${signed.search}`);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe('the original');
    const forged = new URL(signed);
    forged.searchParams.set('X-Amz-Signature', '0'.repeat(64));
    expect((await ask(`/s3-signed${forged.pathname}${forged.search}`)).status).toBe(403);
  });

  it('answers an unreachable service with a JSON 502 and a silent one with a JSON 504', async () => {
    await expectApiError(await ask('/down/x', { origin: ALLOWED }), 502, 'bad_gateway');
    const slow = await ask('/slow/x', { origin: ALLOWED });
    expect(slow.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    await expectApiError(slow, 504, 'upstream_timeout');
  });

  it('answers a URI too long with a JSON 414, and a malformed request with a JSON 400', async () => {
    // No URI yet when these happen: the error pages are URIs, as a named location would fail (500, HTML).
    await expectApiError(await ask(`/v1/uploads/${'a'.repeat(10_000)}`), 414, 'uri_too_long');
    const raw = await new Promise<string>((resolve, reject) => {
      let answer = '';
      const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.end('GET /v1/uploads/u-1 HTTP/1.1 junk\r\nHost: x\r\n\r\n'));
      socket.on('data', (d: Buffer) => (answer += d.toString()));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toMatch(/\r\nContent-Type: application\/json\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
  });

  it('keeps the error pages internal', async () => {
    await expectApiError(await ask('/_gateway/error/502'), 404, 'not_found');
  });

  it("passes the services' own error responses through untouched", async () => {
    const notFound = await ask('/v1/players/nobody/missing', { origin: ALLOWED });
    expect(notFound.status).toBe(404);
    expect(await notFound.text()).toBe(JSON.stringify(OWN_404));
    const tooBig = await ask('/v1/push/too-big', { method: 'POST', body: '{}' });
    expect(tooBig.status).toBe(413);
    expect(await tooBig.text()).toBe(JSON.stringify(OWN_413));
  });

  it('gives an allowed origin its own origin back (never *), on errors too, and hides the services\' CORS headers', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const res = await ask('/v1/players/alice/profile', { origin });
      expect(res.status).toBe(200);
      // One value: the stub's `*` and Allow-Credentials never get through.
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
      expect(res.headers.get('access-control-expose-headers')).toMatch(/Retry-After/);
      expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
      // Preflight headers on preflights only.
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
    }
    for (const [path, method] of [['/nowhere', 'GET'], ['/v1/uploads', 'DELETE']] as const) {
      const res = await ask(path, { method, origin: ALLOWED });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    }
    const tooBig = await ask('/v1/uploads', { method: 'POST', body: new Uint8Array(100 * 1024), origin: ALLOWED });
    expect(tooBig.status).toBe(413);
    expect(tooBig.headers.get('access-control-allow-origin')).toBe(ALLOWED);
  });

  it('gives any other origin no CORS header at all', async () => {
    for (const [path, method] of [['/v1/players/alice/profile', 'GET'], ['/nowhere', 'GET'], ['/v1/uploads', 'DELETE'], ['/v1/uploads', 'OPTIONS']] as const) {
      const res = await ask(path, { method, origin: OTHER });
      expect(corsHeaders(res), `${method} ${path}`).toEqual([]);
      expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    }
    // An allowed origin's prefix or suffix is another origin.
    expect(corsHeaders(await ask('/v1/players/alice/profile', { origin: `${ALLOWED}.evil.example` }))).toEqual([]);
    expect(corsHeaders(await ask('/v1/players/alice/profile'))).toEqual([]);
  });

  it('answers preflights itself: 204 with the route\'s methods, the headers and a max age', async () => {
    const before = seen.length;
    const preflight = (path: string, method: string, origin = ALLOWED) =>
      ask(path, {
        method: 'OPTIONS',
        origin,
        headers: { 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
      });
    const uploads = await preflight('/v1/uploads', 'POST');
    expect(uploads.status).toBe(204);
    expect(uploads.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(uploads.headers.get('access-control-allow-methods')).toBe('POST');
    const allowedHeaders = (uploads.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/,\s*/);
    expect(allowedHeaders).toEqual(expect.arrayContaining(['authorization', 'content-type']));
    expect(Number(uploads.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(uploads.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(uploads.headers.get('allow')).toBe('POST, OPTIONS');
    expect((await preflight('/v1/uploads/u-1', 'GET')).headers.get('access-control-allow-methods')).toBe('GET, HEAD');
    expect((await preflight('/v1/push/subscriptions', 'DELETE')).headers.get('access-control-allow-methods')).toBe('GET, HEAD, POST, PUT, DELETE');
    const s3 = await preflight('/s3/bucket', 'POST', ALSO_ALLOWED);
    expect(s3.status).toBe(204);
    expect(s3.headers.get('access-control-allow-origin')).toBe(ALSO_ALLOWED);
    expect(s3.headers.get('access-control-allow-methods')).toBe('POST, GET, HEAD');
    // Only a route answers preflights.
    const healthz = await preflight('/healthz', 'GET');
    expect(healthz.headers.get('access-control-allow-methods')).toBeNull();
    expect(healthz.headers.get('access-control-max-age')).toBeNull();
    const other = await preflight('/v1/uploads', 'POST', OTHER);
    expect(other.status).toBe(204);
    expect(corsHeaders(other)).toEqual([]);
    expect(seen.length).toBe(before);
  });
});
