/**
 * s3-source: S3 object-created notifications in, CloudEvents out to K_SINK. Notifications arrive
 * by webhook (the local S3 server, MinIO) or, when SQS_QUEUE_URL is set, from SQS (AWS): one
 * input per process (see `inputMode`). /healthz, /readyz and /metrics are served in both.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Handler } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { Registry } from 'prom-client';
import { HttpError } from '@avatar-pipeline/kit/errors';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createMetrics } from '@avatar-pipeline/kit/metrics';
import { createService, type AppEnv, type Service } from '@avatar-pipeline/kit/service';
import { inputMode, type InputMode, type S3SourceConfig } from './config.js';
import { createRelay, type Relay, type RelayOptions } from './relay.js';
import { SqsPoller, type SqsPollerOptions } from './sqs.js';

export interface S3SourceDeps {
  config: Pick<
    S3SourceConfig,
    'K_SINK' | 'K_SINK_OIDC_TOKEN_FILE' | 'AWS_REGION' | 'WEBHOOK_AUTH_TOKEN' | 'WEBHOOK_AUTH_DISABLED' | 'SQS_QUEUE_URL' | 'SQS_VISIBILITY_TIMEOUT_SECONDS'
  >;
  logger: Logger;
  /** Required when SQS_QUEUE_URL is set (SQS mode); unused otherwise. */
  sqs?: Pick<SQSClient, 'send'> | undefined;
  fetch?: typeof fetch;
  /** With tracing on: where the trace presign recorded with each upload is read (see RelayOptions). */
  uploadTrace?: RelayOptions['uploadTrace'];
  /** Delivery tuning (tests shorten the retry delay). */
  delivery?: Pick<RelayOptions, 'concurrency' | 'retries' | 'retryDelayMs'>;
  sqsBackoff?: SqsPollerOptions['backoff'];
  sqsTimeouts?: SqsPollerOptions['timeouts'];
}

export interface S3Source extends Service {
  /** The input this process serves. */
  mode: InputMode;
  /** Present in SQS mode; started by the caller, closed on shutdown. */
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

function createPoller(deps: S3SourceDeps, queueUrl: string, relay: Relay, registry: Registry): SqsPoller {
  if (!deps.sqs) throw new Error('SQS_QUEUE_URL is set but no SQS client was given');
  return new SqsPoller({
    client: deps.sqs,
    queueUrl,
    visibilityTimeoutSeconds: deps.config.SQS_VISIBILITY_TIMEOUT_SECONDS,
    logger: deps.logger,
    registry,
    ...(deps.sqsBackoff ? { backoff: deps.sqsBackoff } : {}),
    ...(deps.sqsTimeouts ? { timeouts: deps.sqsTimeouts } : {}),
    handle: async (body, log, signal) => {
      const outcome = await relay(body, 'sqs', log, signal);
      if (!outcome.ok) log.error({ problem: outcome.problem }, 'message is not an S3 notification; it stays queued for the redrive policy');
      return outcome.ok && outcome.failed === 0;
    },
  });
}

/** Throws a ConfigError when the inputs are misconfigured (see `inputMode`). */
export function createS3Source(deps: S3SourceDeps): S3Source {
  const { config, logger } = deps;
  const mode = inputMode(config);
  if (mode.input === 'webhook' && mode.token === undefined) {
    logger.warn('WEBHOOK_AUTH_DISABLED=true: the webhook takes notifications from anyone who can reach it');
  }
  const metrics = createMetrics('s3-source');
  const relay = createRelay({
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    mapping: { defaultRegion: config.AWS_REGION },
    registry: metrics.registry,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    uploadTrace: deps.uploadTrace,
    ...deps.delivery,
  });

  const poller = mode.input === 'sqs' ? createPoller(deps, mode.queueUrl, relay, metrics.registry) : undefined;

  const service = createService({
    name: 's3-source',
    logger,
    metrics,
    ...(poller ? { readiness: { sqs: () => poller.check() } } : {}),
  });
  if (mode.input === 'webhook') {
    const routes = ['/webhook', '/'];
    if (mode.token === undefined) service.app.on('POST', routes, webhookHandler(relay));
    else service.app.on('POST', routes, webhookAuth(mode.token), webhookHandler(relay));
  }
  return { ...service, mode, poller };
}
