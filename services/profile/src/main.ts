/** Entry point: configuration, real clients, run. */
import {
  awsOptions,
  createLogger,
  dynamoDocumentClient,
  eventAuthFromConfig,
  listenOptions,
  loadConfig,
  main,
  remoteJwks,
  runService,
  s3Client,
} from '@avatar-pipeline/kit';
import { createProfileService } from './app.js';
import { cognitoClient } from './cognito.js';
import { profileEnv } from './config.js';

main(async () => {
  const config = loadConfig(profileEnv);
  const logger = createLogger('profile', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  const aws = awsOptions(config);
  const doc = dynamoDocumentClient(aws);
  const s3 = s3Client(aws);
  const cognito = config.COGNITO_USER_POOL_ID
    ? cognitoClient(config.AWS_REGION, config.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER)
    : undefined;
  const service = createProfileService({ config, doc, s3, cognito, jwks: remoteJwks(config.JWT_JWKS_URL), logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: () => {
      doc.destroy();
      s3.destroy();
      cognito?.destroy();
    },
  });
});
