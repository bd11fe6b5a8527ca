#!/usr/bin/env node
/**
 * The init command: creates the VAPID key pair if absent and prints where it is and its public
 * key (never the private one). Exit 0 whether created or already there; 1 with one line on error.
 */
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createVapidStore, vapidEnv } from './config.js';
import { initVapidKeys } from './load.js';

try {
  const store = createVapidStore(loadConfig(vapidEnv));
  const { created, keys } = await initVapidKeys(store);
  process.stdout.write(`${created ? 'created' : 'kept existing'} VAPID key pair in ${store.describe()}\npublic key: ${keys.publicKey}\n`);
  // Exit now rather than when the SDK's or API client's idle keep-alive sockets close.
  process.exit(0);
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`vapid init failed: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}
