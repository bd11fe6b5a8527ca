/**
 * The public API's OpenAPI 3.1 description, generated from the zod schemas the handlers validate
 * with: each public route is declared with `createRoute` and mounted with `app.openapi()`
 * (@hono/zod-openapi), which validates the request by the same schemas it documents. Each API
 * service serves its document at /openapi.json (internal, like /metrics); the local gateway
 * merges them for clients. A subpath of the kit (`@avatar-pipeline/kit/openapi`): only the API
 * services load @hono/zod-openapi and its generator (some 40 ms of start-up).
 */
import { OpenAPIHono, createRoute, type RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { z } from 'zod';
import { HttpError, describeZodError } from './errors.js';
import { createService, type AppEnv, type Service, type ServiceOptions } from './service.js';

export { createRoute };

/** The version every service's document carries (the API's, not a package's). */
export const API_VERSION = '1.0.0';
export const OPENAPI_PATH = '/openapi.json';
/** The bearer token scheme's name in `components.securitySchemes`. */
export const BEARER = 'bearer';

export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable', example: 'invalid_request' }),
      message: z.string().meta({ description: 'For people; may change' }),
    }),
  })
  .meta({ id: 'Error', description: 'Every error the API answers' });

const errorDescriptions = {
  400: 'The request is malformed or a value is not accepted',
  401: 'No bearer token, or one that is invalid or expired (see WWW-Authenticate)',
  403: 'The token does not allow this',
  404: 'No such resource for this caller',
  409: 'Conflicts with what is stored',
  413: 'The request body is too large',
  415: 'The request body must be application/json',
  429: 'Too many requests: wait Retry-After seconds',
  503: 'A dependency is unavailable: retry after Retry-After seconds',
} as const;
export type ErrorStatus = keyof typeof errorDescriptions;

const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' as const } } };

type ResponseConfig = RouteConfig['responses'][number];

/** The responses object entries for these error statuses, each with the `Error` body. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]): Record<S, ResponseConfig> {
  const responses: Partial<Record<ErrorStatus, ResponseConfig>> = {};
  for (const status of statuses) {
    responses[status] = {
      description: errorDescriptions[status],
      content: { 'application/json': { schema: errorBodySchema } },
      ...(status === 429 || status === 503 ? { headers: retryAfter } : {}),
    };
  }
  return responses as Record<S, ResponseConfig>;
}

/** A JSON body or response of `schema`. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });

/** A request body of `schema`, required and JSON. */
export const jsonRequest = <S extends z.ZodType>(schema: S) => ({ required: true, content: { 'application/json': { schema } } });

/**
 * The hook for a route whose invalid input answers a specific error code (the default is
 * `invalid_request`): 400 with the zod issues in one sentence.
 */
export function invalidAs(code: string) {
  return (result: { success: boolean; error?: z.ZodError }, _c: Context<AppEnv>): undefined => {
    if (!result.success && result.error) throw new HttpError(400, code, describeZodError(result.error));
    return undefined;
  };
}

export interface ApiInfo {
  title: string;
  description: string;
}

/** Serves this service's document at /openapi.json, with the bearer scheme its routes name. */
export function serveOpenApi(app: OpenAPIHono<AppEnv>, info: ApiInfo): void {
  app.openAPIRegistry.registerComponent('securitySchemes', BEARER, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A token from the game\'s identity provider (an ID token with the configured audience, or a Cognito access token from a listed client)',
  });
  app.doc31(OPENAPI_PATH, { openapi: '3.1.0', info: { ...info, version: API_VERSION } });
}

/** A service whose app documents the routes it mounts with `app.openapi()`. */
export interface ApiService extends Service {
  app: OpenAPIHono<AppEnv>;
}

/** `createService` for a public API: input its documented schemas refuse is the API's 400, as `jsonBody` answers it. */
export function createApiService(options: Omit<ServiceOptions, 'app'>): ApiService {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: invalidAs('invalid_request') });
  return { ...createService({ ...options, app }), app };
}
