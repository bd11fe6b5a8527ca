/**
 * The gateway's future front door, for the browser test: the browser uses this server as its
 * HTTP proxy, so the page loads from the gateway's own origin (the origin in every URL the API
 * hands out: presigned POSTs, media). API paths go on to the real gateway; everything else is
 * the built client from web/dist, with the headers the gateway should send for it (see
 * `staticHeaders`). Requests for any other origin are refused: the browser stays on this machine.
 */
import { serve } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { proxy } from 'hono/proxy';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { webClientHeaders } from '@avatar-pipeline/local';

/** Paths the gateway routes itself (API, issuer, media, storage, probes). */
export const gatewayPaths = /^\/(?:v1|dev|media|s3|\.well-known|healthz|readyz|metrics)(?:\/|$)/;


export interface Front {
  /** For Chromium's --proxy-server. */
  proxyUrl: string;
  requests: { method: string; path: string }[];
  close(): Promise<void>;
}

export interface FrontOptions {
  gatewayUrl: string;
  dist: string;
  /**
   * Answer `GET /v1/push/vapid-public-key` with this key instead of the gateway: a stand-in while
   * the stack runs no subscribe service, so the browser still gets as far as subscribing.
   */
  vapidPublicKey?: string | undefined;
}

export async function startFront(options: FrontOptions): Promise<Front> {
  const gateway = new URL(options.gatewayUrl);
  // The gateway listens on 127.0.0.1; "localhost" may resolve to ::1 first.
  const upstream = `http://127.0.0.1:${gateway.port}`;
  const requests: Front['requests'] = [];
  const app = new Hono();

  app.use(async (c, next) => {
    const url = new URL(c.req.url);
    if (url.host !== gateway.host) return c.text('this proxy only reaches the stack', 403);
    requests.push({ method: c.req.method, path: url.pathname });
    return next();
  });
  const { vapidPublicKey } = options;
  if (vapidPublicKey) app.get('/v1/push/vapid-public-key', (c) => c.json({ publicKey: vapidPublicKey }));
  app.all('*', async (c, next) => {
    const url = new URL(c.req.url);
    if (!gatewayPaths.test(url.pathname)) return next();
    const headers = new Headers(c.req.raw.headers);
    headers.delete('proxy-connection');
    return proxy(`${upstream}${url.pathname}${url.search}`, { raw: c.req.raw, headers });
  });
  app.use(
    serveStatic({
      root: options.dist,
      onFound: (path, c) => {
        for (const [name, value] of Object.entries(webClientHeaders(path.slice(options.dist.length)))) c.header(name, value);
      },
    }),
  );
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no such file: ${c.req.path}` } }, 404));

  let server: Server | undefined;
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve()) as Server;
  });
  const s = server!;
  return {
    proxyUrl: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      }),
  };
}
