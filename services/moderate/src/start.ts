/** The service, started by main.ts once tracing runs. */
import { tuneLibvips } from '@avatar-pipeline/imaging';
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createModerateService } from './app.js';
import { moderateEnv } from './config.js';
import { createProvider } from './providers/index.js';
import { moderateStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(moderateEnv);
  const logger = createLogger('moderate', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  tuneLibvips();
  const aws = awsOptions(config);
  const s3 = s3Client(aws);
  const doc = dynamoDocumentClient(aws);
  const started = performance.now();
  const provider = await createProvider(config);
  logger.info({ provider: provider.name, model: provider.name === 'nsfwjs' ? config.NSFWJS_MODEL : undefined, ms: Math.round(performance.now() - started) }, 'moderation provider ready');
  const objects = s3Objects(s3, config.BUCKET);
  const stores = moderateStores(doc, config.TABLE_NAME);
  const service = createModerateService({ config, objects, stores, provider, logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: async () => {
      await provider.close?.();
      s3.destroy();
      doc.destroy();
    },
  });
}
