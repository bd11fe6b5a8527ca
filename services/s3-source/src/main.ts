/** Entry point: configuration, real clients, and the HTTP server plus the SQS poller. */
import { SQSClient } from '@aws-sdk/client-sqs';
import { clientOptions, createLogger, listenOptions, loadConfig, main, runService } from '@avatar-pipeline/kit';
import { createS3Source } from './app.js';
import { s3SourceEnv, webhookMode } from './config.js';

main(async () => {
  const config = loadConfig(s3SourceEnv);
  const logger = createLogger('s3-source', config.LOG_LEVEL);
  const sqs = config.SQS_QUEUE_URL ? new SQSClient(clientOptions(config.AWS_REGION, config.AWS_ENDPOINT_URL_SQS)) : undefined;
  const source = createS3Source({ config, logger, sqs });
  await runService(source, {
    ...listenOptions(config),
    onClose: async () => {
      await source.poller?.close();
      sqs?.destroy();
    },
  });
  source.poller?.start();
  const webhook = webhookMode(config);
  logger.info({ sink: config.K_SINK, webhook: typeof webhook === 'string' ? webhook : 'token', sqs: config.SQS_QUEUE_URL ?? 'off' }, 'relaying S3 notifications');
});
