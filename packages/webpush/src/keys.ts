/**
 * VAPID key pairs (RFC 8292): a P-256 key, the public half as the uncompressed point browsers take
 * as `applicationServerKey`, both base64url as web-push expects them.
 */
import { createECDH } from 'node:crypto';
import { createRequire } from 'node:module';
import { ConfigError } from '@avatar-pipeline/kit/config';

/** web-push, loaded only to make a pair (the init Job, the local stack): services only read theirs. */
const webpush = (): typeof import('web-push') => createRequire(import.meta.url)('web-push') as typeof import('web-push');

export interface VapidKeys {
  /** base64url, the uncompressed P-256 point: 65 bytes starting 0x04. */
  publicKey: string;
  /** base64url, the 32-byte private scalar. */
  privateKey: string;
}

/** A missing or broken key pair is a deployment problem: services stop with one clear line. */
export class VapidKeyError extends ConfigError {
  override name = 'VapidKeyError';
}

const base64url = /^[A-Za-z0-9_-]+$/;

function decode(value: string, what: string, bytes: number): Buffer {
  const decoded = base64url.test(value) ? Buffer.from(value, 'base64url') : undefined;
  if (!decoded || decoded.length !== bytes) throw new VapidKeyError(`the VAPID ${what} must be ${bytes} bytes of base64url`);
  return decoded;
}

export function generateVapidKeys(): VapidKeys {
  const { publicKey, privateKey } = webpush().generateVAPIDKeys();
  return { publicKey, privateKey };
}

/** The public key belonging to a private key. */
export function derivePublicKey(privateKey: string): string {
  const ecdh = createECDH('prime256v1');
  try {
    ecdh.setPrivateKey(decode(privateKey, 'private key', 32));
  } catch (err) {
    if (err instanceof VapidKeyError) throw err;
    throw new VapidKeyError('the VAPID private key is not a valid P-256 private key');
  }
  return ecdh.getPublicKey().toString('base64url');
}

/**
 * Throws unless both keys are well formed and the public key is the private key's. A mismatch
 * means browsers subscribed with a key the server cannot sign for: every push would be refused.
 */
export function validateVapidKeys(keys: VapidKeys): VapidKeys {
  const publicKey = decode(keys.publicKey, 'public key', 65);
  if (publicKey[0] !== 0x04) throw new VapidKeyError('the VAPID public key must be an uncompressed P-256 point (first byte 0x04)');
  if (derivePublicKey(keys.privateKey) !== publicKey.toString('base64url')) {
    throw new VapidKeyError('the VAPID public key does not belong to the private key');
  }
  return keys;
}
