/**
 * Per-subject rate limits as fixed windows counted in the shared DynamoDB table. The count lives
 * in the table, not in memory, so a limit holds across replicas and survives scale-to-zero.
 *
 *   pk RATE#<scope>#<subject>   sk <window start, ISO 8601>   count (number), expiresAt (TTL)
 *
 * One conditional UpdateItem per request: ADD increments atomically and the condition refuses
 * the increment once the window is full, so refused requests do not count.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { MiddlewareHandler } from 'hono';
import { Counter, type Registry } from 'prom-client';
import { HttpError, unavailable } from './errors.js';
import { zeroed } from './metrics.js';
import { documentCommand } from './sdk.js';
import type { AppEnv } from './service.js';
import { TTL_ATTRIBUTE, epochSeconds, isConditionFailure, systemClock, type Clock } from './table.js';

const UpdateCommand = documentCommand('UpdateCommand');

/** The public APIs' per-player limits: presign's uploads, subscribe's subscriptions (erasing a player deletes their windows). */
export const playerRateLimitScopes = ['uploads', 'subscriptions'] as const satisfies readonly string[];
export type PlayerRateLimitScope = (typeof playerRateLimitScopes)[number];

export interface RateLimitOptions {
  /** Names the limited action (`uploads`, `subscriptions`): part of the key and the metric label. */
  scope: string;
  /** Requests allowed per window. */
  limit: number;
  windowSeconds: number;
  clock?: Clock;
  /** Where `avatarpipeline_rate_limited_total{scope}` is counted (a service's registry). */
  registry?: Registry;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** End of the current window. */
  resetAt: Date;
  /** Whole seconds until the window ends (at least 1). */
  retryAfterSeconds: number;
}

const LIMITED_METRIC = 'avatarpipeline_rate_limited_total';

/** The registry's counter (one per registry, whatever the number of limiters), with this scope's series at 0. */
function limitedCounter(registry: Registry, scope: string): Counter<'scope'> {
  const counter =
    (registry.getSingleMetric(LIMITED_METRIC) as Counter<'scope'> | undefined) ??
    new Counter({ name: LIMITED_METRIC, help: 'Requests refused by a rate limit, by scope', labelNames: ['scope'], registers: [registry] });
  return zeroed(counter, [{ scope }]);
}

export function rateLimitKey(scope: string, subject: string, windowStart: Date): { pk: string; sk: string } {
  return { pk: `RATE#${scope}#${subject}`, sk: windowStart.toISOString() };
}

export class RateLimiter {
  private readonly clock: Clock;
  private readonly limited: Counter<'scope'> | undefined;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: RateLimitOptions,
  ) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new RangeError('rate limit must be a positive integer');
    if (!Number.isInteger(options.windowSeconds) || options.windowSeconds < 1) throw new RangeError('rate limit window must be a positive integer');
    this.clock = options.clock ?? systemClock;
    this.limited = options.registry ? limitedCounter(options.registry, options.scope) : undefined;
  }

  /** Names the limited action (`uploads`, `subscriptions`). */
  get scope(): string {
    return this.options.scope;
  }

  /** Counts one request by `subject` in the current window, unless the window is already full. */
  async consume(subject: string): Promise<RateLimitDecision> {
    const { scope, limit, windowSeconds } = this.options;
    const now = this.clock().getTime();
    const windowMs = windowSeconds * 1000;
    const start = Math.floor(now / windowMs) * windowMs;
    const resetAt = new Date(start + windowMs);
    const retryAfterSeconds = Math.max(1, Math.ceil((resetAt.getTime() - now) / 1000));
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: rateLimitKey(scope, subject, new Date(start)),
          UpdateExpression: 'ADD #count :one SET #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(#count) OR #count < :limit',
          ExpressionAttributeNames: { '#count': 'count', '#ttl': TTL_ATTRIBUTE },
          // Kept one window past its end: expired windows are never read again.
          ExpressionAttributeValues: { ':one': 1, ':limit': limit, ':ttl': epochSeconds(resetAt) + windowSeconds },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const count = Number(Attributes?.['count'] ?? limit);
      return { allowed: true, limit, remaining: Math.max(0, limit - count), resetAt, retryAfterSeconds };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { allowed: false, limit, remaining: 0, resetAt, retryAfterSeconds };
    }
  }

  /**
   * As `consume`, but a full window throws a 429 `rate_limited` HttpError with Retry-After.
   * Table errors propagate unchanged: the caller decides how to fail.
   */
  async enforce(subject: string): Promise<RateLimitDecision> {
    const decision = await this.consume(subject);
    if (!decision.allowed) {
      this.limited?.inc({ scope: this.options.scope });
      throw new HttpError(
        429,
        'rate_limited',
        `at most ${decision.limit} ${this.options.scope} per ${this.options.windowSeconds} s; retry in ${decision.retryAfterSeconds} s`,
        { 'Retry-After': String(decision.retryAfterSeconds) },
      );
    }
    return decision;
  }
}

export interface RateLimitMiddlewareOptions {
  /** The limit: each request counts once in its window (the table keeps the count). */
  limiter: Pick<RateLimiter, 'scope' | 'enforce'>;
  /** What a 503 tells the caller when the count cannot be checked (default: `rate limit check failed; try again shortly`). */
  unavailableMessage?: string;
}

/**
 * The public APIs' per-player rate limit, as route middleware after the bearer auth middleware
 * (the player is the subject): it counts the request before the body is read or checked, so
 * malformed requests count too. A full window answers 429 `rate_limited` with Retry-After (logged
 * at info); a table that cannot count answers 503 `unavailable` with Retry-After, the cause
 * logged by the service.
 */
export function rateLimit(options: RateLimitMiddlewareOptions): MiddlewareHandler<AppEnv> {
  const { limiter } = options;
  return async (c, next) => {
    const playerId = c.get('playerId');
    try {
      await limiter.enforce(playerId);
    } catch (err) {
      if (err instanceof HttpError) {
        c.get('log').info({ playerId, scope: limiter.scope, retryAfter: err.headers['Retry-After'] }, 'rate limited');
        throw err;
      }
      throw unavailable('rate limit check failed', err, {
        ...(options.unavailableMessage !== undefined ? { message: options.unavailableMessage } : {}),
        logFields: { playerId, scope: limiter.scope },
      });
    }
    await next();
  };
}

/** Makes a public API's per-player limiter: only for the scopes erasure deletes with the player. */
export type PlayerRateLimiters = (options: Omit<RateLimitOptions, 'clock'> & { scope: PlayerRateLimitScope }) => Pick<RateLimiter, 'scope' | 'enforce'>;

/** Per-player limiters counted in the table. */
export function playerRateLimiters(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): PlayerRateLimiters {
  return (options) => new RateLimiter(doc, table, { ...options, clock });
}
