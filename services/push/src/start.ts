/** The service, started by main.ts: configuration, real clients, run. Refuses to start without a valid VAPID key pair. */
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { awsOptions, dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { createVapidStore } from '@avatar-pipeline/webpush';
import { attemptTimeoutMs, createPushService } from './app.js';
import { claimLeaseMs } from './claims.js';
import { pushEnv } from './config.js';
import { createPushAgent } from './sender.js';
import { pushStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(pushEnv);
  const logger = createLogger('push', config.LOG_LEVEL);
  const eventAuth = eventAuthFromConfig(config, logger);
  const doc = dynamoDocumentClient(awsOptions(config));
  const dispatcher = createPushAgent({
    allowHttp: config.PUSH_ALLOW_HTTP,
    connections: config.PUSH_HOST_CONCURRENCY,
    attemptTimeoutMs: attemptTimeoutMs(config),
  });
  const stores = pushStores(doc, config.TABLE_NAME, claimLeaseMs(config.PUSH_TIMEOUT_MS));
  const service = await createPushService({ config, stores, vapidStore: createVapidStore(config), dispatcher, logger, eventAuth });
  await runService(service, {
    ...listenOptions(config),
    onClose: async () => {
      await dispatcher.close();
      doc.destroy();
    },
  });
}
