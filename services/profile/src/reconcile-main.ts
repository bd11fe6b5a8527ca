/**
 * The reconciler, once: the `reconciler` CronJob's command (`node services/profile/dist/reconcile-main.js`).
 * It logs one JSON summary line (`reconcile pass finished`: ended by reason, orphans deleted,
 * the oldest open upload's age, errors) and exits 0, or 1 when anything could not be handled
 * (the Job then counts as failed; the next scheduled run retries whatever is left).
 */
import { awsOptions, dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import { main } from '@avatar-pipeline/kit/server';
import { Registry } from 'prom-client';
import { logSummary, reconcile, reconcileDeps, reconcilerMetrics } from './reconcile.js';
import { reconcileEnv, timeoutWarnings } from './reconcile-config.js';
import { profileStores } from './stores.js';

main(async () => {
  const config = loadConfig(reconcileEnv);
  const logger = createLogger('reconciler', config.LOG_LEVEL);
  for (const warning of timeoutWarnings(config)) logger.warn(warning);
  const aws = awsOptions(config);
  const doc = dynamoDocumentClient(aws);
  const s3 = s3Client(aws);
  try {
    const deps = reconcileDeps(config, { stores: profileStores(doc, config.TABLE_NAME), objects: s3Objects(s3, config.BUCKET), metrics: reconcilerMetrics(new Registry()), logger });
    const summary = await reconcile(deps);
    logSummary(logger, summary);
    process.exitCode = summary.errors === 0 ? 0 : 1;
  } finally {
    doc.destroy();
    s3.destroy();
  }
});
