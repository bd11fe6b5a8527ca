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
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { webClientHeaders } from '@avatar-pipeline/local';

/** Paths the gateway routes itself (API, issuer, media, storage, probes). */
export const gatewayPaths = /^\/(?:v1|dev|media|s3|\.well-known|healthz|readyz|metrics)(?:\/|$)/;


export interface Front {
  /** For Chromium's --proxy-server. */
  proxyUrl: string;
  /** What reached the gateway through the front (the game hosts' own requests are not here). */
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
  /**
   * Hosts (port 80) standing in for a game's own site: they serve the built client with
   * `<meta name="avatar-api">` naming the gateway's origin, and nothing of the API, so the page
   * reaches the API and the storage cross-origin (CORS), as a game embedding the client would.
   */
  gameHosts?: readonly string[];
}

/** A game's site: the built client pointed at the API on `apiOrigin`, and no API of its own. */
function gameSite(dist: string, apiOrigin: string): Hono {
  const site = new Hono();
  const headers = (file: string) => webClientHeaders(file, apiOrigin);
  site.get('/', async (c) => {
    const html = (await readFile(join(dist, 'index.html'), 'utf8')).replace('<head>', `<head>\n    <meta name="avatar-api" content="${apiOrigin}" />`);
    return c.html(html, 200, headers('/index.html'));
  });
  site.all('*', async (c, next) => (gatewayPaths.test(c.req.path) ? c.json({ error: { code: 'not_found', message: 'no API here' } }, 404) : next()));
  site.use(serveStatic({ root: dist, onFound: (path, c) => Object.entries(headers(path.slice(dist.length))).forEach(([name, value]) => c.header(name, value)) }));
  return site;
}

export async function startFront(options: FrontOptions): Promise<Front> {
  const gateway = new URL(options.gatewayUrl);
  // The gateway listens on 127.0.0.1; "localhost" may resolve to ::1 first.
  const upstream = `http://127.0.0.1:${gateway.port}`;
  const requests: Front['requests'] = [];
  const app = new Hono();

  const gameHosts = new Set(options.gameHosts ?? []);
  const game = gameSite(options.dist, gateway.origin);
  app.use(async (c, next) => {
    const url = new URL(c.req.url);
    if (gameHosts.has(url.host)) return game.fetch(c.req.raw);
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
