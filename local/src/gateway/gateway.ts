/**
 * The local gateway on one port: the public API routes to the services, the dev issuer, the
 * CDN stand-in (`/media`) and the S3 endpoint browsers post uploads to (`/s3`, through the POST
 * policy guard). It plays the part of the ingress, the CDN and the S3 endpoint in the cluster.
 */
import type { Context, Handler, MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { cors } from 'hono/cors';
import { apiDocsPage, apiDocument } from './api-docs.js';
import { proxy } from 'hono/proxy';
import { apiRoutes, apiRouteMethods, type ApiRoute } from '@avatar-pipeline/kit/api-routes';
import { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS } from '@avatar-pipeline/kit/cors';
import { errorBody } from '@avatar-pipeline/kit/errors';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createMetrics } from '@avatar-pipeline/kit/metrics';
import { createService, type AppEnv, type ReadinessCheck, type Service } from '@avatar-pipeline/kit/service';
import type { ServiceName } from '@avatar-pipeline/kit/topology';

/** Anything that answers fetch requests in process (a Hono app). */
export interface FetchTarget {
  fetch(request: Request): Response | Promise<Response>;
}

export interface GatewayOptions {
  logger: Logger;
  /** Base URL of a service, or undefined when it is not part of this stack. */
  upstream: (service: ServiceName) => string | undefined;
  /** The dev issuer (`/dev/*`, `/.well-known/*`). */
  issuer: FetchTarget;
  /** The S3 endpoint for browser uploads (the POST policy guard in front of s3rver). */
  storage: FetchTarget;
  /** Serves `/media/*`. */
  media: Handler<AppEnv>;
  /** Serves the built game client at `/` (when it is built). */
  web?: MiddlewareHandler<AppEnv> | undefined;
  /** Largest request body: an upload plus its form fields. */
  maxBodyBytes: number;
  readiness?: Readonly<Record<string, ReadinessCheck>>;
  /** Longest wait for a service's answer. */
  upstreamTimeoutMs?: number;
  /** Origins whose pages may call the API cross-origin (CORS_ORIGINS; none by default). */
  corsOrigins?: readonly string[] | undefined;
}

/** Hono's form of a kit API route; `{.*}` keeps a prefix route off its bare path, as nginx's `^~`. */
const honoPath = (route: ApiRoute) => (route.match === 'exact' ? route.path : `${route.path}:rest{.*}`);

function clientAddress(c: Context<AppEnv>): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // Not served by @hono/node-server (in-process requests).
  }
}

/** The request's headers for the next hop: hop-by-hop ones are dropped by `proxy` itself. */
function forwardedHeaders(c: Context<AppEnv>): Record<string, string | undefined> {
  const headers: Record<string, string | undefined> = { ...c.req.header() };
  const client = clientAddress(c);
  const chain = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = client ? (chain ? `${chain}, ${client}` : client) : chain;
  headers['x-forwarded-host'] = headers['host'];
  headers['x-forwarded-proto'] = 'http';
  headers['x-request-id'] = c.get('requestId');
  headers['host'] = undefined;
  return headers;
}

export function createGateway(options: GatewayOptions): Service {
  const service = createService({
    name: 'gateway',
    logger: options.logger,
    // Its own request metrics only: the process's runtime metrics (and their event-loop monitor,
    // which wakes the process every few ms) are the broker's, in the same process.
    metrics: createMetrics('gateway', { defaults: false }),
    bodyLimitBytes: options.maxBodyBytes,
    ...(options.readiness ? { readiness: options.readiness } : {}),
  });
  const { app } = service;
  const timeoutMs = options.upstreamTimeoutMs ?? 30_000;

  const forward = async (c: Context<AppEnv>, url: URL | string, name: string, target?: FetchTarget) => {
    try {
      const res = await proxy(url, {
        raw: c.req.raw,
        headers: forwardedHeaders(c),
        signal: AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(timeoutMs)]),
        ...(target ? { customFetch: (request: Request) => Promise.resolve(target.fetch(request)) } : {}),
      });
      // A returned Response skips the headers middleware set on the context.
      res.headers.set('X-Request-Id', c.get('requestId'));
      return res;
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') return c.json(errorBody('upstream_timeout', `${name} did not answer in time`), 504);
      c.get('log').warn({ upstream: name, problem: (err as Error).message }, 'upstream unreachable');
      return c.json(errorBody('service_unavailable', `${name} is not reachable right now`), 503, { 'Retry-After': '1' });
    }
  };

  /** Same path and query on the service. */
  const toService =
    (name: ServiceName): Handler<AppEnv> =>
    (c) => {
      const base = options.upstream(name);
      if (!base) return c.json(errorBody('service_unavailable', `${name} is not running in this stack`), 503);
      const url = new URL(c.req.url);
      return forward(c, `${base}${url.pathname}${url.search}`, name);
    };

  const inProcess =
    (name: string, target: FetchTarget, stripPrefix = ''): Handler<AppEnv> =>
    (c) => {
      const url = new URL(c.req.url);
      url.pathname = url.pathname.slice(stripPrefix.length) || '/';
      return forward(c, url, name, target);
    };

  // CORS as the cluster's nginx gateway does it: an allowed Origin is echoed with the route's own
  // methods on preflight, any other origin gets no Access-Control-Allow-Origin.
  const allowed = new Set(options.corsOrigins ?? []);
  const corsFor = (methods: readonly string[]) =>
    cors({
      origin: (origin) => (allowed.has(origin) ? origin : null),
      allowMethods: [...methods],
      allowHeaders: [...CORS_ALLOW_HEADERS],
      exposeHeaders: [...CORS_EXPOSE_HEADERS],
      maxAge: CORS_MAX_AGE_SECONDS,
    });
  for (const route of apiRoutes) {
    const path = honoPath(route);
    const methods = apiRouteMethods(route);
    if (allowed.size > 0) app.use(path, corsFor(methods));
    app.on([...methods], path, toService(route.service));
    // As the cluster's nginx: OPTIONS is the gateway's own answer (after CORS, if any), any other
    // method is 405, each with the route's methods in Allow.
    const allow = [...methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])), 'OPTIONS'].join(', ');
    app.on('OPTIONS', path, (c) => c.body(null, 204, { Allow: allow }));
    app.all(path, (c) => c.json(errorBody('method_not_allowed', 'this method is not allowed on this route (see the Allow header)'), 405, { Allow: allow }));
  }
  if (allowed.size > 0) app.use('/dev/*', corsFor(['POST']));
  app.all('/dev/*', inProcess('dev-issuer', options.issuer));
  app.all('/.well-known/*', inProcess('dev-issuer', options.issuer));
  app.on(['GET', 'HEAD'], '/media/*', options.media);
  app.get('/openapi.json', apiDocument(options.upstream));
  app.get('/docs', apiDocsPage);
  app.get('/docs/*', apiDocsPage);
  // Browsers only ever POST presigned forms here (from another origin they may ask first: OPTIONS,
  // answered by the bucket's CORS rule as S3 answers it) and GET presigned links (a moderator's
  // view of an upload); the upload guard refuses the rest of those, and any other method would let
  // anyone plant avatars or delete uploads, as s3rver takes anonymous requests.
  app.on(['POST', 'OPTIONS', 'GET', 'HEAD'], '/s3/*', inProcess('storage', options.storage, '/s3'));
  app.all('/s3/*', (c) =>
    c.json(errorBody('method_not_allowed', `${c.req.method} is not allowed on /s3: uploads are presigned POSTs, reads presigned GETs`), 405, {
      Allow: 'GET, HEAD, POST, OPTIONS',
    }),
  );
  if (options.web) app.on(['GET', 'HEAD'], '*', options.web);
  return service;
}
