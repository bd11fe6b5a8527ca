/** Where the VAPID key pair lives. Every backend creates it at most once, so redeploys keep it. */
import { derivePublicKey, VapidKeyError, type VapidKeys } from './keys.js';

export interface VapidKeyStore {
  /** Names the backend and location for logs and messages (never the key material). */
  describe(): string;
  /** The stored pair, or undefined when there is none. */
  read(): Promise<VapidKeys | undefined>;
  /**
   * Stores `keys` unless a pair already exists; either way returns the pair now stored, so two
   * concurrent inits converge on one pair.
   */
  createIfAbsent(keys: VapidKeys): Promise<{ created: boolean; keys: VapidKeys }>;
}

/**
 * Completes what a backend found. The private key is the pair: with only it stored (an init
 * stopped between its two writes) the public key is derived. A public key without its private key
 * cannot be recovered, and replacing it would silently break every subscription made with it, so
 * that needs an operator.
 */
export function completePair(where: string, found: { publicKey?: string | undefined; privateKey?: string | undefined }): VapidKeys | undefined {
  if (found.privateKey !== undefined) return { privateKey: found.privateKey, publicKey: found.publicKey ?? derivePublicKey(found.privateKey) };
  if (found.publicKey !== undefined) {
    throw new VapidKeyError(
      `${where} holds a VAPID public key without its private key; remove the public key and run the init command to create a new pair (existing push subscriptions will stop working)`,
    );
  }
  return undefined;
}
