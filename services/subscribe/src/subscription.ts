/**
 * A browser's PushSubscriptionJSON, validated at the edge. The endpoint must pass the shared push
 * endpoint policy (push checks it again before each send); the keys must be usable, so a bad
 * subscription is refused now rather than failing every notification later.
 */
import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { HttpError } from '@avatar-pipeline/kit/errors';
import { checkPushEndpoint, type PushEndpointPolicy, type PushSubscriptionData } from '@avatar-pipeline/webpush';

/**
 * The JSON shape only; meaning is checked by `parseSubscription` with a code per problem.
 * Unknown members are ignored: browsers and push libraries may add some (the spec lets
 * PushSubscriptionJSON grow), and nothing but these three is stored.
 */
export const subscriptionBodySchema = z.object({
  endpoint: z.string({ error: 'endpoint must be the push service URL (a string)' }),
  expirationTime: z.number({ error: 'expirationTime must be a number of milliseconds since the epoch, or null' }).nonnegative().nullable().optional(),
  keys: z.object(
    {
      p256dh: z.string({ error: 'keys.p256dh must be a base64url string' }),
      auth: z.string({ error: 'keys.auth must be a base64url string' }),
    },
    { error: 'keys must hold p256dh and auth' },
  ),
});

export const unsubscribeBodySchema = z.object({
  endpoint: z.string({ error: 'endpoint must be the push service URL (a string)' }).min(1, 'endpoint must not be empty'),
});

const base64url = /^[A-Za-z0-9_-]+={0,2}$/;

function decodeKey(value: string, name: string, bytes: number): Buffer {
  const decoded = base64url.test(value) ? Buffer.from(value, 'base64url') : undefined;
  if (!decoded || decoded.length !== bytes) throw new HttpError(400, 'invalid_key', `keys.${name} must be ${bytes} bytes, base64url-encoded`);
  return decoded;
}

/** The client's ECDH key: an uncompressed point that must lie on P-256 (RFC 8291). */
function checkP256dh(value: string): void {
  const point = decodeKey(value, 'p256dh', 65);
  if (point[0] !== 0x04) throw new HttpError(400, 'invalid_key', 'keys.p256dh must be an uncompressed P-256 point (first byte 0x04)');
  try {
    // Key import refuses coordinates that are not a point on the curve.
    createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw new HttpError(400, 'invalid_key', 'keys.p256dh is not a point on the P-256 curve');
  }
}

export function parseSubscription(body: z.output<typeof subscriptionBodySchema>, policy: PushEndpointPolicy, now: Date): PushSubscriptionData {
  const endpoint = checkPushEndpoint(body.endpoint, policy);
  if (!endpoint.ok) throw new HttpError(400, endpoint.code, endpoint.message);
  checkP256dh(body.keys.p256dh);
  decodeKey(body.keys.auth, 'auth', 16);
  const expirationTime = body.expirationTime ?? null;
  if (expirationTime !== null && expirationTime <= now.getTime()) {
    throw new HttpError(400, 'subscription_expired', 'expirationTime has passed: subscribe again in the browser');
  }
  // Stored normalised (host case, default port), so spellings of one endpoint share one item.
  return { endpoint: endpoint.url.href, expirationTime, keys: { p256dh: body.keys.p256dh, auth: body.keys.auth } };
}

/** The stored form of an endpoint a client asks to remove (see `parseSubscription`). */
export function normaliseEndpoint(endpoint: string): string {
  return URL.canParse(endpoint) ? new URL(endpoint).href : endpoint;
}
