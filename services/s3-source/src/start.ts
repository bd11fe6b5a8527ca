/** The service, started by main.ts: configuration, real clients, and the HTTP server plus, in SQS mode, the poller. */
import { awsOptions, clientOptions, dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { tracing } from '@avatar-pipeline/kit/tracing';
import { createS3SourceService, type S3SourceDeps } from './app.js';
import { loadS3SourceConfig, type S3SourceConfig } from './config.js';
import type { SqsQueue } from './sqs.js';

/** With tracing on, each upload's event continues the trace presign recorded with it; the table is not read otherwise. */
function uploadTraces(config: S3SourceConfig): { lookup: S3SourceDeps['uploadTrace']; close(): void } | undefined {
  if (!tracing()) return undefined;
  const doc = dynamoDocumentClient(awsOptions(config));
  const uploads = new UploadStore(doc, config.TABLE_NAME);
  return { lookup: (playerId, uploadId, signal) => uploads.trace(playerId, uploadId, signal), close: () => doc.destroy() };
}

/** The queue SQS_QUEUE_URL names; the SQS SDK is loaded only here, in SQS mode: the webhook mode never needs it. */
async function sqsInput(config: S3SourceConfig, queueUrl: string): Promise<{ queue: SqsQueue; close(): void }> {
  const [{ SQSClient }, { sqsQueue }] = await Promise.all([import('@aws-sdk/client-sqs'), import('./sqs-queue.js')]);
  const client = new SQSClient(clientOptions(config.AWS_REGION, config.AWS_ENDPOINT_URL_SQS));
  return { queue: sqsQueue(client, queueUrl), close: () => client.destroy() };
}

export async function start(): Promise<void> {
  // Every configuration problem, the choice of input included, stops here with one line.
  const { config, mode } = loadS3SourceConfig();
  const logger = createLogger('s3-source', config.LOG_LEVEL);
  const sqs = mode.input === 'sqs' ? await sqsInput(config, mode.queueUrl) : undefined;
  const traces = uploadTraces(config);
  const source = createS3SourceService({ config, logger, queue: sqs?.queue, uploadTrace: traces?.lookup });
  const { poller } = source;

  // On SIGTERM the poller stops receiving at once, alongside the HTTP drain, and its batch in hand
  // gets the grace period: delivered messages are deleted, unfinished ones left for redelivery.
  const graceMs = config.SHUTDOWN_GRACE_SECONDS * 1000;
  let stopping: Promise<void> | undefined;
  const stopPoller = () => (stopping ??= poller?.close(graceMs) ?? Promise.resolve());
  if (poller) for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stopPoller());

  await runService(source, {
    ...listenOptions(config),
    onClose: async () => {
      await stopPoller();
      sqs?.close();
      traces?.close();
    },
  });
  poller?.start();
  logger.info(
    mode.input === 'sqs'
      ? { sink: config.K_SINK, input: 'sqs', queueUrl: mode.queueUrl }
      : { sink: config.K_SINK, input: 'webhook', webhookAuth: mode.token === undefined ? 'none' : 'token' },
    'relaying S3 notifications',
  );
}
