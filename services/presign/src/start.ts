/** The service, started by main.ts: configuration, real AWS clients, then serve until SIGTERM. */
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createPresignService } from './app.js';
import { presignEnv } from './config.js';

export async function start(): Promise<void> {
  const config = loadConfig(presignEnv);
  const logger = createLogger('presign', config.LOG_LEVEL);
  const aws = awsOptions(config);
  const s3 = s3Client(aws);
  const doc = dynamoDocumentClient(aws);
  const service = createPresignService({
    logger,
    s3,
    doc,
    auth: authFromConfig(config),
    settings: {
      bucket: config.BUCKET,
      table: config.TABLE_NAME,
      maxBytes: config.AVATAR_MAX_BYTES,
      expiresSeconds: config.PRESIGN_EXPIRES_SECONDS,
      publicUrl: config.S3_PUBLIC_URL,
      rateLimit: { uploads: config.RATE_LIMIT_UPLOADS, windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS },
    },
  });
  await runService(service, listenOptions(config));
}
