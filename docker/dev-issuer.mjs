// The dev-issuer image's entry point (kind only): the local package's issuer behind the kit's HTTP shell.
import { commonEnv, loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { listenOptions, main, runService } from '@avatar-pipeline/kit/server';
import { createDevIssuer } from '@avatar-pipeline/local';
import { z } from 'zod';

main(async () => {
  const config = loadConfig({ ...commonEnv, DEV_ISSUER: z.url(), DEV_AUDIENCE: z.string().min(1) });
  const logger = createLogger('dev-issuer', config.LOG_LEVEL);
  const issuer = await createDevIssuer({ issuer: config.DEV_ISSUER, audience: config.DEV_AUDIENCE, logger });
  await runService(issuer.service, listenOptions(config));
});
