/** The service, started by main.ts: configuration, the VAPID public key (checked against its private key), then serve until SIGTERM. */
import { awsOptions, dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { listenOptions, runService } from '@avatar-pipeline/kit/server';
import { pushEndpointPolicy } from '@avatar-pipeline/webpush';
import { createVapidStore, loadVapidKeys } from '@avatar-pipeline/webpush';
import { createSubscribeService } from './app.js';
import { subscribeEnv } from './config.js';
import { subscribeStores } from './stores.js';

export async function start(): Promise<void> {
  const config = loadConfig(subscribeEnv);
  const logger = createLogger('subscribe', config.LOG_LEVEL);
  // Refuses to start without a pair or with a mismatched one: browsers must subscribe with the key push signs for.
  const vapidStore = createVapidStore(config);
  const { publicKey } = await loadVapidKeys(vapidStore);
  logger.info({ store: vapidStore.describe(), publicKey }, 'VAPID public key loaded');
  const doc = dynamoDocumentClient(awsOptions(config));
  const service = createSubscribeService({
    logger,
    stores: subscribeStores(doc, config.TABLE_NAME),
    vapidPublicKey: publicKey,
    auth: authFromConfig(config),
    settings: {
      policy: pushEndpointPolicy(config),
      maxDevices: config.PUSH_MAX_DEVICES,
      rateLimit: { subscriptions: config.RATE_LIMIT_SUBSCRIPTIONS, windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS },
    },
  });
  await runService(service, { ...listenOptions(config), onClose: () => doc.destroy() });
}
