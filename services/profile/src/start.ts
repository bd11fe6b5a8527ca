/** The service, started by main.ts: configuration, real clients, run. */
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createProfileService } from './app.js';
import { cognitoClient, cognitoPictureSync } from './cognito.js';
import { profileEnv } from './config.js';
import { logSummary, reconcile, reconcileDeps, reconcilerMetrics, startReconcileTimer } from './reconcile.js';
import { timeoutWarnings } from './reconcile-config.js';
import { profileStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(profileEnv);
  const logger = createLogger('profile', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  const aws = awsOptions(config);
  const doc = dynamoDocumentClient(aws);
  const s3 = s3Client(aws);
  const stores = profileStores(doc, config.TABLE_NAME);
  const objects = s3Objects(s3, config.BUCKET);
  const userPoolId = config.COGNITO_USER_POOL_ID;
  const cognito = userPoolId ? cognitoClient(config.AWS_REGION, config.AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER) : undefined;
  const pictures = cognito && userPoolId ? cognitoPictureSync(cognito, userPoolId) : undefined;
  const service = createProfileService({ config, stores, objects, pictures, auth: authFromConfig(config), logger, eventAuth });
  // The local stack's stand-in for the reconciler CronJob (RECONCILE_PERIOD_SECONDS; unset in a cluster).
  let reconciler: { stop(): Promise<void> } | undefined;
  if (config.RECONCILE_PERIOD_SECONDS !== undefined) {
    const reconcileLog = logger.child({ job: 'reconciler' });
    for (const warning of timeoutWarnings(config)) reconcileLog.warn(warning);
    const deps = reconcileDeps(config, { stores, objects, metrics: reconcilerMetrics(service.metrics.registry), logger: reconcileLog });
    reconciler = startReconcileTimer(async () => logSummary(reconcileLog, await reconcile(deps), true), config.RECONCILE_PERIOD_SECONDS * 1000, reconcileLog);
  }
  await runService(service, {
    ...listenOptions(config),
    onClose: async () => {
      await reconciler?.stop();
      doc.destroy();
      s3.destroy();
      cognito?.destroy();
    },
  });
}
