/**
 * The HTTP shell every service shares: request ids, JSON request logs, metrics,
 * /healthz, /readyz, /metrics, JSON errors and in-flight tracking for graceful shutdown.
 */
import type { IncomingMessage } from 'node:http';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { routePath } from 'hono/route';
import type { TokenPolicy } from './auth.js';
import { HttpError, asHttpError, errorBody, errorResponse } from './errors.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { requestTrace, traceLogFields, tracing } from './tracing.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** Set by the bearer auth middleware. */
    playerId: string;
    /** Set by the bearer auth middleware: the token's roles (none: an empty list). */
    roles: string[];
  };
}

export type ReadinessCheck = () => Promise<unknown>;

export interface ServiceOptions {
  name: string;
  logger: Logger;
  metrics?: Metrics;
  /** Named dependency checks for /readyz; each rejects when its dependency is unusable. */
  readiness?: Readonly<Record<string, ReadinessCheck>>;
  /** Largest request body accepted (default 64 KiB: APIs and events here are small). */
  bodyLimitBytes?: number;
  /** The token every event delivery must carry (see `eventEndpoint`); undefined: none. */
  eventAuth?: TokenPolicy | undefined;
  /** The app to build on (default: a new Hono); `createApiService` passes one that documents its routes. */
  app?: Hono<AppEnv>;
}

/** Counts requests in flight so shutdown can wait for them. */
export class Lifecycle {
  draining = false;
  private inflight = 0;
  private waiters: (() => void)[] = [];

  enter(): void {
    this.inflight += 1;
  }

  leave(): void {
    this.inflight -= 1;
    if (this.inflight === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  get active(): number {
    return this.inflight;
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    return this.inflight === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface Service {
  name: string;
  app: Hono<AppEnv>;
  logger: Logger;
  metrics: Metrics;
  lifecycle: Lifecycle;
  eventAuth?: TokenPolicy | undefined;
}

const quietPaths = new Set(['/healthz', '/readyz', '/metrics']);
const CHECK_TIMEOUT_MS = 2000;

export function createService(options: ServiceOptions): Service {
  const { name, logger } = options;
  const metrics = options.metrics ?? createMetrics(name);
  const lifecycle = new Lifecycle();
  const app = options.app ?? new Hono<AppEnv>();
  // Requests no handler took: labelled `unmatched`, not with a path or a middleware's pattern.
  const unmatched = new WeakSet<Context>();

  app.use(requestId({ limitLength: 128 }));
  app.use(async (c, next) => {
    const started = performance.now();
    const { method } = c.req;
    const received = requestTrace((name) => c.req.header(name));
    // Probes and scrapes are not traced: they would bury the requests.
    const span = quietPaths.has(c.req.path)
      ? undefined
      : tracing()?.startSpan({ kind: 'server', name: method, parent: received, attributes: { 'http.request.method': method } });
    const ceId = c.req.header('ce-id');
    c.set('log', logger.child({ reqId: c.get('requestId'), ...(ceId ? { ceId } : {}), ...traceLogFields(span, received) }));
    lifecycle.enter();
    try {
      await (span ? span.run(next) : next());
    } finally {
      lifecycle.leave();
      const seconds = (performance.now() - started) / 1000;
      const status = c.res.status;
      const route = unmatched.has(c) ? 'unmatched' : routePath(c, -1);
      metrics.httpDuration.observe({ method, route, status: String(status) }, seconds);
      if (span) {
        // Named by the route template, never the path: ids in paths would make every name unique.
        if (route !== 'unmatched') {
          span.rename(`${method} ${route}`);
          span.setAttributes({ 'http.route': route });
        }
        span.setAttributes({ 'http.response.status_code': status });
        span.end(status >= 500 ? `answered ${status}` : undefined);
      }
      const path = c.req.path;
      const level = quietPaths.has(path) ? 'debug' : status >= 500 ? 'error' : 'info';
      c.get('log')[level]({ method, path, route, status, ms: Math.round(seconds * 1000) }, 'request');
    }
  });
  app.use(bodySizeLimit(options.bodyLimitBytes ?? 64 * 1024));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (lifecycle.draining) return c.json({ status: 'draining' }, 503);
    const checks = Object.entries(options.readiness ?? {});
    const results = await Promise.all(
      checks.map(async ([check, run]) => {
        try {
          await withTimeout(run(), CHECK_TIMEOUT_MS);
          return [check, 'ok'] as const;
        } catch (err) {
          c.get('log').warn({ check, err: (err as Error).message }, 'readiness check failed');
          return [check, 'failing'] as const;
        }
      }),
    );
    const ok = results.every(([, state]) => state === 'ok');
    return c.json({ status: ok ? 'ok' : 'unavailable', checks: Object.fromEntries(results) }, ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    c.header('Content-Type', metrics.registry.contentType);
    return c.body(await metrics.registry.metrics());
  });

  app.notFound((c) => {
    unmatched.add(c);
    return c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404);
  });
  app.onError((err, c) => {
    // Logged here and only here: an HttpError's cause (a dependency failed), and unexpected
    // errors. Other HttpErrors and Hono's own 4xx are the caller's doing.
    if (err instanceof HttpError) {
      if (Object.hasOwn(err, 'cause')) c.get('log')?.error({ ...err.logFields, err: err.cause }, err.logMessage ?? err.message);
    } else if ((asHttpError(err)?.status ?? 500) >= 500) c.get('log')?.error({ err }, 'unhandled error');
    return errorResponse(c, err);
  });

  return { name, app, logger, metrics, lifecycle, eventAuth: options.eventAuth };
}

const tooLarge = () => new HttpError(413, 'payload_too_large', 'request body is too large');

/**
 * Refuses bodies over `maxSize` with 413. Hono's bodyLimit first asks for `c.req.raw.body`, which
 * makes @hono/node-server build a full web Request and a stream over the socket for every
 * request, GETs included (~0.1 ms of CPU each, a tenth of presign's budget). On a Node HTTP/1.x
 * request the headers settle it instead: the parser delivers exactly Content-Length bytes, and a
 * request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3). Chunked
 * bodies, and requests that did not come through Node's server (in-process `app.request`), are
 * still counted as they are read, by hono's middleware.
 */
function bodySizeLimit(maxSize: number): MiddlewareHandler<AppEnv> {
  const counted = bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge();
    },
  });
  return async (c, next) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (incoming?.httpVersionMajor === 1 && incoming.headers['transfer-encoding'] === undefined) {
      const length = incoming.headers['content-length'];
      if (length !== undefined && Number(length) > maxSize) throw tooLarge();
      return next();
    }
    return counted(c, next);
  };
}

/** `promise`, or a rejection once `ms` have passed (the work itself is not cancelled). */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
