/**
 * s3-source: S3 object-created notifications in, CloudEvents out to K_SINK. Notifications arrive
 * by webhook (the local S3 server, MinIO) and, when a queue is configured, from SQS (AWS).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Handler } from 'hono';
import { createMiddleware } from 'hono/factory';
import { HttpError, createMetrics, createService, type AppEnv, type Logger, type Service } from '@avatar-pipeline/kit';
import { webhookMode, type S3SourceConfig } from './config.js';
import { createRelay, type Relay, type RelayOptions } from './relay.js';
import { SqsPoller, type SqsPollerOptions } from './sqs.js';

export interface S3SourceDeps {
  config: Pick<
    S3SourceConfig,
    'K_SINK' | 'K_SINK_OIDC_TOKEN_FILE' | 'AWS_REGION' | 'WEBHOOK_AUTH_TOKEN' | 'WEBHOOK_AUTH_DISABLED' | 'SQS_QUEUE_URL' | 'SQS_VISIBILITY_TIMEOUT_SECONDS'
  >;
  logger: Logger;
  /** Required when SQS_QUEUE_URL is set. */
  sqs?: Pick<SQSClient, 'send'> | undefined;
  fetch?: typeof fetch;
  /** Delivery tuning (tests shorten the retry delay). */
  delivery?: Pick<RelayOptions, 'concurrency' | 'retries' | 'retryDelayMs'>;
  sqsBackoff?: SqsPollerOptions['backoff'];
}

export interface S3Source extends Service {
  /** Present when SQS_QUEUE_URL is set; started by the caller, stopped on shutdown. */
  poller: SqsPoller | undefined;
}

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

function createPoller(deps: S3SourceDeps, queueUrl: string, relay: Relay): SqsPoller {
  if (!deps.sqs) throw new Error('SQS_QUEUE_URL is set but no SQS client was given');
  return new SqsPoller({
    client: deps.sqs,
    queueUrl,
    visibilityTimeoutSeconds: deps.config.SQS_VISIBILITY_TIMEOUT_SECONDS,
    logger: deps.logger,
    ...(deps.sqsBackoff ? { backoff: deps.sqsBackoff } : {}),
    handle: async (body, log) => {
      const outcome = await relay(body, 'sqs', log);
      if (!outcome.ok) log.error({ problem: outcome.problem }, 'message is not an S3 notification; it stays queued for the redrive policy');
      return outcome.ok && outcome.failed === 0;
    },
  });
}

/** Throws a ConfigError when the webhook would be open without WEBHOOK_AUTH_DISABLED=true (see `webhookMode`). */
export function createS3Source(deps: S3SourceDeps): S3Source {
  const { config, logger } = deps;
  const webhook = webhookMode(config);
  if (webhook === 'open') logger.warn('WEBHOOK_AUTH_DISABLED=true: the webhook takes notifications from anyone who can reach it');
  const metrics = createMetrics('s3-source');
  const relay = createRelay({
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    mapping: { defaultRegion: config.AWS_REGION },
    registry: metrics.registry,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...deps.delivery,
  });

  const poller = config.SQS_QUEUE_URL ? createPoller(deps, config.SQS_QUEUE_URL, relay) : undefined;

  const service = createService({
    name: 's3-source',
    logger,
    metrics,
    ...(poller ? { readiness: { sqs: () => poller.check() } } : {}),
  });
  if (webhook === 'open') service.app.on('POST', ['/webhook', '/'], webhookHandler(relay));
  else if (webhook !== 'off') service.app.on('POST', ['/webhook', '/'], webhookAuth(webhook.token), webhookHandler(relay));
  return { ...service, poller };
}
