/** Start-up and init: the two ways services meet the key store. */
import { generateVapidKeys, validateVapidKeys, VapidKeyError, type VapidKeys } from './keys.js';
import type { VapidKeyStore } from './store.js';

export const INIT_COMMAND = 'the VAPID init command (node packages/webpush/dist/init.js; the vapid-init Job in the cluster)';

/**
 * The stored pair, checked: the public key must be the private key's, else push would sign for a
 * key browsers never subscribed with, so services refuse to start. No pair is an error naming
 * the init command: services never create keys themselves.
 */
export async function loadVapidKeys(store: VapidKeyStore): Promise<VapidKeys> {
  const keys = await store.read();
  if (!keys) throw new VapidKeyError(`no VAPID key pair in ${store.describe()}: create it with ${INIT_COMMAND}`);
  try {
    return validateVapidKeys(keys);
  } catch (err) {
    throw new VapidKeyError(`${store.describe()}: ${(err as Error).message}`);
  }
}

/** Creates the pair unless one exists, and checks whatever is stored. */
export async function initVapidKeys(store: VapidKeyStore): Promise<{ created: boolean; keys: VapidKeys }> {
  const existing = await store.read();
  const result = existing ? { created: false, keys: existing } : await store.createIfAbsent(generateVapidKeys());
  try {
    validateVapidKeys(result.keys);
  } catch (err) {
    throw new VapidKeyError(`${store.describe()}: ${(err as Error).message}`);
  }
  return result;
}
