/**
 * The public API's description for clients of the local stack: `GET /openapi.json` merges the
 * documents the API services generate from their own schemas (each at its internal
 * /openapi.json), and `GET /docs` is Swagger UI over it, served from the swagger-ui-dist package
 * (this machine may be offline, and the page's policy allows its own origin only).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Handler } from 'hono';
import { errorBody } from '@avatar-pipeline/kit/errors';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import { publicServices, type PublicService } from '@avatar-pipeline/kit/topology';
import { OPENAPI_PATH } from '@avatar-pipeline/kit/openapi';

interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

/** Merges the services' documents: paths and components may not collide unless they are equal. */
export function mergeDocuments(documents: readonly OpenApiDocument[], info: OpenApiDocument['info']): OpenApiDocument {
  const paths: Record<string, Record<string, unknown>> = {};
  const components: Record<string, Record<string, unknown>> = {};
  for (const doc of documents) {
    for (const [path, operations] of Object.entries(doc.paths ?? {})) {
      const merged = (paths[path] ??= {});
      for (const [method, operation] of Object.entries(operations)) {
        if (method in merged) throw new Error(`${method.toUpperCase()} ${path} is described by two services`);
        merged[method] = operation;
      }
    }
    for (const [kind, entries] of Object.entries(doc.components ?? {})) {
      const merged = (components[kind] ??= {});
      for (const [name, value] of Object.entries(entries)) {
        if (name in merged && JSON.stringify(merged[name]) !== JSON.stringify(value)) throw new Error(`components.${kind}.${name} differs between services`);
        merged[name] = value;
      }
    }
  }
  return { openapi: '3.1.0', info, paths, components };
}

/** `GET /openapi.json`: the running API services' documents, merged; 503 while one is down. */
export function apiDocument(upstream: (service: PublicService) => string | undefined): Handler<AppEnv> {
  return async (c) => {
    const documents: OpenApiDocument[] = [];
    for (const service of publicServices) {
      const base = upstream(service);
      if (!base) continue; // Not part of this stack: its routes are not served either.
      try {
        const res = await fetch(`${base}${OPENAPI_PATH}`, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`status ${res.status}`);
        documents.push((await res.json()) as OpenApiDocument);
      } catch (err) {
        c.get('log').warn({ upstream: service, problem: (err as Error).message }, 'API description unavailable');
        return c.json(errorBody('service_unavailable', `${service} is not reachable right now`), 503, { 'Retry-After': '1' });
      }
    }
    const version = documents[0]?.info.version ?? '0.0.0';
    c.header('Cache-Control', 'no-cache');
    return c.json(mergeDocuments(documents, { title: 'avatar-pipeline API', version, description: 'Player avatars: upload tickets, status, profiles and push subscriptions' }));
  };
}

const swaggerDist = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const swaggerFiles: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};
const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>avatar-pipeline API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;
const init = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;
/** Swagger UI styles its elements inline; everything else comes from this origin. */
const PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** `GET /docs` and its files. */
export const apiDocsPage: Handler<AppEnv> = async (c) => {
  const file = c.req.path.replace(/^\/docs\/?/, '');
  if (file === '') return c.html(page, 200, { 'Content-Security-Policy': PAGE_POLICY });
  if (file === 'init.js') return c.body(init, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  const type = swaggerFiles[file];
  if (!type) return c.json(errorBody('not_found', `no such file: ${c.req.path}`), 404);
  return c.body(await readFile(join(swaggerDist, file)), 200, { 'Content-Type': type, 'Cache-Control': 'public, max-age=3600' });
};
