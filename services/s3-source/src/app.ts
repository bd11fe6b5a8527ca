/**
 * s3-source: S3 object-created notifications in, CloudEvents out to K_SINK. Notifications arrive
 * by webhook (the local S3 server, MinIO; webhook.ts) or, when SQS_QUEUE_URL is set, from SQS
 * (AWS; sqs.ts): one input per process (see `inputMode`). /healthz, /readyz and /metrics are
 * served in both.
 */
import type { Registry } from 'prom-client';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createMetrics } from '@avatar-pipeline/kit/metrics';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { inputMode, type InputMode, type S3SourceConfig } from './config.js';
import { createRelay, type Relay, type RelayOptions } from './relay.js';
import { SqsPoller, type SqsPollerOptions, type SqsQueue } from './sqs.js';
import { webhookRoutes } from './webhook.js';

export interface S3SourceDeps {
  config: Pick<
    S3SourceConfig,
    'K_SINK' | 'K_SINK_OIDC_TOKEN_FILE' | 'AWS_REGION' | 'WEBHOOK_AUTH_TOKEN' | 'WEBHOOK_AUTH_DISABLED' | 'SQS_QUEUE_URL' | 'SQS_VISIBILITY_TIMEOUT_SECONDS'
  >;
  logger: Logger;
  /** The queue SQS_QUEUE_URL names (`sqsQueue`): required in SQS mode, unused otherwise. */
  queue?: SqsQueue | undefined;
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

function createPoller(deps: S3SourceDeps, queueUrl: string, relay: Relay, registry: Registry): SqsPoller {
  if (!deps.queue) throw new Error('SQS_QUEUE_URL is set but no queue was given');
  return new SqsPoller({
    queue: deps.queue,
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
export function createS3SourceService(deps: S3SourceDeps): S3Source {
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
  if (mode.input === 'webhook') webhookRoutes(service.app, relay, mode.token);
  return { ...service, mode, poller };
}
