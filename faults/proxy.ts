/**
 * A fault proxy: an HTTP proxy in front of one stand-in (s3rver or dynalite) that the services are
 * pointed at (the stack's `serviceEndpoints` option), switched at runtime between
 *
 *   pass                  every request forwarded untouched
 *   latency               each request held `latencyMs` before it is forwarded
 *   503                   a fraction of requests answered `503 ServiceUnavailable` in the store's
 *                         own error format, never reaching the store
 *   connection reset      a fraction of connections reset (TCP RST): half before the request is
 *                         forwarded, half after the store answered, so the store did the work but
 *                         the caller never hears of it (the case idempotent writes must survive)
 *
 * (modes combine). Requests are forwarded with their headers untouched (Host included, so SigV4
 * signatures still match) over keep-alive connections; when the store cannot be reached (it is
 * being restarted) the caller's connection is cut, as it would be by the store itself.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FaultMode {
  /** Held before each request is forwarded (ms). */
  latencyMs?: number;
  /** Fraction (0..1) of requests answered 503 without reaching the store. */
  errorRate?: number;
  /** Fraction (0..1) of requests whose connection is reset. */
  resetRate?: number;
}

export type StoreFlavor = 's3' | 'dynamodb';

export interface FaultStats {
  requests: number;
  forwarded: number;
  delayed: number;
  /** 503s answered by the proxy. */
  injected503: number;
  /** Connections reset before the request reached the store. */
  resetBefore: number;
  /** Connections reset after the store answered (the answer is lost). */
  resetAfter: number;
  /** Requests the store could not take (down, or its connection cut): the caller's connection was cut. */
  upstreamErrors: number;
}

export interface FaultProxy {
  readonly name: string;
  /** http://127.0.0.1:<port>: what the services get as their endpoint. */
  readonly url: string;
  readonly mode: Readonly<FaultMode>;
  /** Switches the mode for requests from now on (`{}` is pass). */
  set(mode: FaultMode): void;
  readonly stats: Readonly<FaultStats>;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  name: string;
  /** The store's base URL, e.g. http://127.0.0.1:4569. */
  target: string;
  flavor: StoreFlavor;
  /** Random numbers in [0, 1) (tests pass a deterministic one). */
  random?: () => number;
}

/** What the real service says when it is unavailable, so the SDK treats it as it would in AWS. */
function unavailable(flavor: StoreFlavor): { headers: Record<string, string>; body: string } {
  if (flavor === 's3') {
    return {
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code><Message>Injected by the fault proxy.</Message><RequestId>fault-proxy</RequestId></Error>',
    };
  }
  return {
    headers: { 'content-type': 'application/x-amz-json-1.0' },
    body: JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ServiceUnavailable', message: 'Injected by the fault proxy.' }),
  };
}

/** A hard reset (RST), not a polite FIN: what a crashed peer or a dropped NAT entry looks like. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = options.random ?? Math.random;
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const stats: FaultStats = { requests: 0, forwarded: 0, delayed: 0, injected503: 0, resetBefore: 0, resetAfter: 0, upstreamErrors: 0 };
  let mode: FaultMode = {};
  const rejection = unavailable(options.flavor);

  function forward(req: IncomingMessage, res: ServerResponse, resetAfter: boolean): void {
    stats.forwarded += 1;
    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    });
    const cut = () => {
      upstream.destroy();
      reset(req.socket);
    };
    upstream.on('error', () => {
      stats.upstreamErrors += 1;
      reset(req.socket);
    });
    req.on('aborted', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.on('response', (answer) => {
      if (resetAfter) {
        // The store has done the work; its answer never arrives.
        answer.resume();
        answer.on('end', () => {
          stats.resetAfter += 1;
          reset(req.socket);
        });
        answer.on('error', cut);
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
      answer.on('error', cut);
    });
    req.pipe(upstream);
  }

  const server = createServer((req, res) => {
    stats.requests += 1;
    const current = mode;
    const act = () => {
      if (req.socket.destroyed) return;
      if (current.errorRate && random() < current.errorRate) {
        stats.injected503 += 1;
        // Read the request first: answering mid-upload would leave the connection unusable.
        req.resume();
        req.on('end', () => {
          res.writeHead(503, { ...rejection.headers, 'content-length': Buffer.byteLength(rejection.body), 'x-fault-proxy': '503' });
          res.end(rejection.body);
        });
        return;
      }
      if (current.resetRate && random() < current.resetRate) {
        if (random() < 0.5) {
          stats.resetBefore += 1;
          reset(req.socket);
          return;
        }
        forward(req, res, true);
        return;
      }
      forward(req, res, false);
    };
    if (current.latencyMs && current.latencyMs > 0) {
      stats.delayed += 1;
      // Paused meanwhile, so the body waits in the socket rather than being lost.
      req.pause();
      setTimeout(act, current.latencyMs);
    } else {
      act();
    }
  });
  server.keepAliveTimeout = 5000;
  // A reset socket must not take the proxy down.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    set(next) {
      mode = { ...next };
    },
    get stats() {
      return stats;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/** A short description of a mode for logs and the report. */
export function describeMode(mode: FaultMode): string {
  const parts: string[] = [];
  if (mode.latencyMs) parts.push(`+${mode.latencyMs} ms`);
  if (mode.errorRate) parts.push(`503 × ${Math.round(mode.errorRate * 100)} %`);
  if (mode.resetRate) parts.push(`reset × ${Math.round(mode.resetRate * 100)} %`);
  return parts.length ? parts.join(', ') : 'pass';
}
