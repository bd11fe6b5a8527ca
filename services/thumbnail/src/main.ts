import { tuneLibvips } from '@avatar-pipeline/imaging';
import { awsOptions, createLogger, eventAuthFromConfig, listenOptions, loadConfig, main, runService, s3Client } from '@avatar-pipeline/kit';
import { createThumbnailService } from './app.js';
import { thumbnailEnv } from './config.js';

main(async () => {
  const config = loadConfig(thumbnailEnv);
  const logger = createLogger('thumbnail', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  tuneLibvips();
  const s3 = s3Client(awsOptions(config));
  const service = createThumbnailService({ config, s3, logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: () => s3.destroy(),
  });
});
