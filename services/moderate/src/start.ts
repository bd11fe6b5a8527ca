/** The service, started by main.ts once tracing runs. */
import { tuneLibvips } from '@avatar-pipeline/imaging';
import { awsOptions, createLogger, dynamoDocumentClient, eventAuthFromConfig, listenOptions, loadConfig, runService, s3Client } from '@avatar-pipeline/kit';
import { createModerateService } from './app.js';
import { moderateEnv } from './config.js';
import { createProvider } from './providers/index.js';

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
  const service = createModerateService({ config, s3, doc, provider, logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: async () => {
      await provider.close?.();
      s3.destroy();
      doc.destroy();
    },
  });
}
