/** One error shape for every API: `{"error":{"code","message"}}` with the right status. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

export interface HttpErrorOptions {
  /**
   * The failure underneath (a dependency's error). Never answered: the service's error handler
   * logs it, once, at error level, with `logMessage` and `logFields`.
   */
  cause?: unknown;
  /** The log line's message for the cause (default: the error's own message). */
  logMessage?: string;
  /** Fields the log line carries beside the request's (the player, the upload). */
  logFields?: Readonly<Record<string, unknown>>;
}

/**
 * An error the API answers as is. One without a `cause` is the caller's doing (bad input, a full
 * rate window) and is not logged as an error; one with a `cause` is logged by the service's error
 * handler, so the code that throws it does not log it too.
 */
export class HttpError extends Error {
  readonly logMessage: string | undefined;
  readonly logFields: Readonly<Record<string, unknown>>;

  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    options: HttpErrorOptions = {},
  ) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'HttpError';
    this.logMessage = options.logMessage;
    this.logFields = options.logFields ?? {};
  }
}

export interface UnavailableOptions {
  /** What the caller is told (default: `${what}; try again shortly`). */
  message?: string;
  /** Fields the log line carries (the player, the upload). */
  logFields?: Readonly<Record<string, unknown>>;
  /** The Retry-After the 503 carries (default 5 s). */
  retryAfterSeconds?: number;
}

/**
 * A dependency failed: a retryable 503 `unavailable` with Retry-After that tells the caller no
 * details. `what` failed and its `cause` are logged once, by the service's error handler.
 */
export function unavailable(what: string, cause: unknown, options: UnavailableOptions = {}): HttpError {
  return new HttpError(
    503,
    'unavailable',
    options.message ?? `${what}; try again shortly`,
    { 'Retry-After': String(options.retryAfterSeconds ?? 5) },
    { cause, logMessage: what, ...(options.logFields ? { logFields: options.logFields } : {}) },
  );
}

/** One line for a thrown value: its message and its cause's, without line breaks (the CloudEvents SDK puts its validation details on extra lines). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`.replace(/\s*\n\s*/g, ' ');
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Renders a zod error as one readable sentence naming each bad field. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

const codeForStatus: Partial<Record<number, string>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/**
 * The API error a thrown value stands for: an HttpError as is, Hono's HTTPException (from its
 * middleware and @hono/zod-openapi's request checks) in the API's codes and words, otherwise
 * undefined (an unexpected error).
 */
export function asHttpError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (!(err instanceof HTTPException)) return undefined;
  const status = err.status as ContentfulStatusCode;
  if (status === 415) return new HttpError(415, 'unsupported_media_type', 'the request body must be application/json');
  if (status === 400 && /malformed json/i.test(err.message)) return new HttpError(400, 'invalid_json', 'the request body is not valid JSON');
  return new HttpError(status, codeForStatus[status] ?? 'error', err.message || 'request failed');
}

/** Maps any thrown value to the JSON error response; unknown errors become an opaque 500. */
export function errorResponse(c: Context, err: unknown): Response {
  const known = asHttpError(err);
  if (!known) return c.json(errorBody('internal', 'internal error'), 500);
  for (const [name, value] of Object.entries(known.headers)) c.header(name, value);
  return c.json(errorBody(known.code, known.message), known.status);
}
