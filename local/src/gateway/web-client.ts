/**
 * Serving the built game client (web/dist) from the gateway, with the headers a service worker
 * and a content security policy need. The web package's browser test serves it the same way.
 */
import { serveStatic } from '@hono/node-server/serve-static';
import type { MiddlewareHandler } from 'hono';

/**
 * Cache and security headers for a file of the built client, by its path under dist/. `apiOrigin`:
 * the API's origin when the page is served from another one (its fetches and avatars come from there).
 */
export function webClientHeaders(file: string, apiOrigin?: string): Record<string, string> {
  const headers: Record<string, string> = { 'X-Content-Type-Options': 'nosniff' };
  // Content-hashed names never change content; everything else revalidates so a deploy takes effect at once.
  headers['Cache-Control'] = file.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
  if (file === '/sw.js') headers['Service-Worker-Allowed'] = '/';
  if (file.endsWith('.html')) {
    // Media and uploads are on this origin locally; in a cluster add the CDN origin to img-src
    // and the S3 POST origin to connect-src.
    const api = apiOrigin ? ` ${apiOrigin}` : '';
    headers['Content-Security-Policy'] =
      `default-src 'self'; img-src 'self'${api} data:; connect-src 'self'${api}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'`;
    headers['Referrer-Policy'] = 'strict-origin-when-cross-origin';
  }
  return headers;
}

/** GET/HEAD handler for the client's files under `dist`; a missing file falls through (404 JSON). */
export function webClient(dist: string): MiddlewareHandler {
  return serveStatic({
    root: dist,
    onFound: (path, c) => {
      for (const [name, value] of Object.entries(webClientHeaders(path.slice(dist.length)))) c.header(name, value);
    },
  });
}
