/**
 * POST /webhook (and /): notifications as MinIO or the local S3 server posts them, behind
 * MinIO's shared-secret `auth_token` unless WEBHOOK_AUTH_DISABLED=true.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Handler, Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { HttpError } from '@avatar-pipeline/kit/errors';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import type { Relay } from './relay.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Shared-secret check: MinIO's webhook `auth_token` arrives as `Authorization: Bearer <token>`.
 * Digests make the comparison constant-time whatever the length of what was sent.
 */
function webhookAuth(token: string) {
  const expected = digest(token);
  return createMiddleware<AppEnv>(async (c, next) => {
    const given = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
    if (!timingSafeEqual(digest(given), expected)) {
      throw new HttpError(401, 'unauthorized', 'a valid webhook token is required', { 'WWW-Authenticate': 'Bearer' });
    }
    await next();
  });
}

/** 2xx only when the sink took every event: otherwise MinIO (or whoever posts) must retry. */
function webhookHandler(relay: Relay): Handler<AppEnv> {
  return async (c) => {
    const outcome = await relay(await c.req.text(), 'webhook', c.get('log'));
    if (!outcome.ok) throw new HttpError(400, 'invalid_notification', outcome.problem);
    if (outcome.failed > 0) {
      const total = outcome.emitted + outcome.failed;
      throw new HttpError(502, 'sink_unavailable', `the sink accepted ${outcome.emitted} of ${total} events; retry the notification`);
    }
    return c.json({ emitted: outcome.emitted, skipped: outcome.skipped });
  };
}

/** `token` undefined: no auth (WEBHOOK_AUTH_DISABLED=true). */
export function webhookRoutes(app: Hono<AppEnv>, relay: Relay, token: string | undefined): void {
  const routes = ['/webhook', '/'];
  if (token === undefined) app.on('POST', routes, webhookHandler(relay));
  else app.on('POST', routes, webhookAuth(token), webhookHandler(relay));
}
