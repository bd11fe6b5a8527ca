/**
 * VAPID (RFC 8292) Authorization headers, one per push service origin, signed once and reused.
 * Signing is most of web-push's per-message CPU, and Apple asks for a new token at most hourly:
 * a token is valid for 12 h and replaced once it is an hour old, so it always has 11 h left.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import type { VapidKeys } from '@avatar-pipeline/webpush';

export const VAPID_TOKEN_LIFETIME_SECONDS = 12 * 3600;
export const VAPID_TOKEN_REFRESH_SECONDS = 3600;
/** Push services are few; the bound only matters if a wildcard allowlist entry matches many hosts. */
const MAX_AUDIENCES = 1000;

export interface VapidSignerOptions {
  keys: VapidKeys;
  /** `mailto:` or `https:` contact (validated with the configuration). */
  subject: string;
  clock?: Clock;
  /** Called for each signature (a metric: it shows the cache working). */
  onSign?: () => void;
}

/** The private key as a KeyObject, built from the raw base64url pair (JWK coordinates). */
export function vapidKeyObject(keys: VapidKeys): KeyObject {
  const point = Buffer.from(keys.publicKey, 'base64url');
  if (point.length !== 65 || point[0] !== 4) throw new Error('the VAPID public key is not an uncompressed P-256 point');
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: point.subarray(1, 33).toString('base64url'),
    y: point.subarray(33).toString('base64url'),
    d: keys.privateKey,
  };
  return createPrivateKey({ key: jwk, format: 'jwk' });
}

interface CachedHeader {
  signedAt: number;
  header: Promise<string>;
}

export class VapidSigner {
  private readonly key: KeyObject;
  private readonly clock: Clock;
  private readonly cache = new Map<string, CachedHeader>();

  constructor(private readonly options: VapidSignerOptions) {
    this.key = vapidKeyObject(options.keys);
    this.clock = options.clock ?? systemClock;
  }

  /** `vapid t=<jwt>, k=<public key>` for requests to `audience` (an origin such as https://fcm.googleapis.com). */
  authorization(audience: string): Promise<string> {
    const now = this.clock().getTime();
    const cached = this.cache.get(audience);
    if (cached && now - cached.signedAt < VAPID_TOKEN_REFRESH_SECONDS * 1000) return cached.header;

    this.cache.delete(audience);
    if (this.cache.size >= MAX_AUDIENCES) this.cache.delete(this.cache.keys().next().value as string);
    // The promise is cached, so concurrent sends to a new audience share one signature.
    const header = this.sign(audience, now);
    this.cache.set(audience, { signedAt: now, header });
    header.catch(() => {
      if (this.cache.get(audience)?.header === header) this.cache.delete(audience);
    });
    return header;
  }

  private async sign(audience: string, now: number): Promise<string> {
    const jwt = await new SignJWT({ aud: audience, sub: this.options.subject })
      .setProtectedHeader({ typ: 'JWT', alg: 'ES256' })
      .setExpirationTime(Math.floor(now / 1000) + VAPID_TOKEN_LIFETIME_SECONDS)
      .sign(this.key);
    this.options.onSign?.();
    return `vapid t=${jwt}, k=${this.options.keys.publicKey}`;
  }
}
