/** The service, started by main.ts once tracing runs. */
import { tuneLibvips } from '@avatar-pipeline/imaging';
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { createThumbnailService } from './app.js';
import { thumbnailEnv } from './config.js';

export async function start(): Promise<void> {
  const config = loadConfig(thumbnailEnv);
  const logger = createLogger('thumbnail', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  tuneLibvips();
  const aws = awsOptions(config);
  const s3 = s3Client(aws);
  const doc = dynamoDocumentClient(aws);
  const approvals = new UploadStore(doc, config.TABLE_NAME);
  const service = createThumbnailService({ config, s3, logger, eventAuth, approvals, approvalsReadiness: tableReadiness(doc, config.TABLE_NAME) });
  await runService(service, {
    ...listenOptions(config),
    onClose: () => {
      s3.destroy();
      doc.destroy();
    },
  });
}
