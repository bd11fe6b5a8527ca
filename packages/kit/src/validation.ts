/** Request validation at the edge: JSON bodies and path parameters checked with zod. */
import { createMiddleware } from 'hono/factory';
import type { z } from 'zod';
import { HttpError, describeZodError } from './errors.js';
import type { AppEnv } from './service.js';

/** Parses and validates a JSON body; the result is `c.get('body')`. */
export function jsonBody<S extends z.ZodType>(schema: S) {
  return createMiddleware<AppEnv & { Variables: { body: z.output<S> } }>(async (c, next) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
      throw new HttpError(415, 'unsupported_media_type', 'the request body must be application/json');
    }
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      throw new HttpError(400, 'invalid_json', 'the request body is not valid JSON');
    }
    const result = schema.safeParse(raw);
    if (!result.success) throw new HttpError(400, 'invalid_request', describeZodError(result.error));
    c.set('body', result.data);
    await next();
  });
}

/** Validates a value (a path parameter, a query value) or answers 400/404 with `code`. */
export function parseParam<S extends z.ZodType>(schema: S, value: unknown, status: 400 | 404 = 400, code = 'invalid_request'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(status, code, status === 404 ? 'not found' : describeZodError(result.error));
  return result.data;
}
