/** The service, started by main.ts: configuration, real AWS clients and the ports over them, then serve until SIGTERM. */
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createPresignService } from './app.js';
import { presignEnv } from './config.js';
import { PostSigner } from './post-signer.js';
import { presignStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(presignEnv);
  const logger = createLogger('presign', config.LOG_LEVEL);
  const aws = awsOptions(config);
  const s3 = s3Client(aws);
  const service = createPresignService({
    logger,
    stores: presignStores(dynamoDocumentClient(aws), config.TABLE_NAME),
    signer: new PostSigner(s3),
    objects: s3Objects(s3, config.BUCKET),
    auth: authFromConfig(config),
    settings: {
      maxBytes: config.AVATAR_MAX_BYTES,
      expiresSeconds: config.PRESIGN_EXPIRES_SECONDS,
      publicUrl: config.S3_PUBLIC_URL,
      rateLimit: { uploads: config.RATE_LIMIT_UPLOADS, windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS },
    },
  });
  await runService(service, listenOptions(config));
}
