/** The service, started by main.ts once tracing runs. */
import { tuneLibvips } from '@avatar-pipeline/imaging';
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createThumbnailService } from './app.js';
import { thumbnailEnv } from './config.js';
import { thumbnailStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(thumbnailEnv);
  const logger = createLogger('thumbnail', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  tuneLibvips();
  const aws = awsOptions(config);
  const s3 = s3Client(aws);
  const doc = dynamoDocumentClient(aws);
  const objects = s3Objects(s3, config.BUCKET);
  const stores = thumbnailStores(doc, config.TABLE_NAME);
  const service = createThumbnailService({ config, objects, stores, logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: () => {
      s3.destroy();
      doc.destroy();
    },
  });
}
