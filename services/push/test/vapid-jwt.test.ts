import { createPublicKey } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateVapidKeys } from '@avatar-pipeline/webpush';
import { VapidSigner } from '../src/index.js';
import { testClock } from './harness.js';

const keys = generateVapidKeys();
const subject = 'mailto:ops@example.com';

function publicKeyObject(publicKey: string) {
  const point = Buffer.from(publicKey, 'base64url');
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    format: 'jwk',
  });
}

function signer(clock = testClock()) {
  let signatures = 0;
  const vapid = new VapidSigner({ keys, subject, clock: clock.fn, onSign: () => (signatures += 1) });
  return { vapid, clock, signatures: () => signatures };
}

describe('VAPID Authorization headers', () => {
  it('are `vapid t=<ES256 JWT>, k=<public key>` with aud, sub and a 12 h exp', async () => {
    const { vapid, clock } = signer();
    const header = await vapid.authorization('https://fcm.googleapis.com');
    const match = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(header);
    expect(match?.[2]).toBe(keys.publicKey);
    const jwt = match![1]!;
    expect(decodeProtectedHeader(jwt)).toEqual({ typ: 'JWT', alg: 'ES256' });
    const { payload } = await jwtVerify(jwt, publicKeyObject(keys.publicKey), { currentDate: clock.fn(), algorithms: ['ES256'] });
    expect(payload).toEqual({ aud: 'https://fcm.googleapis.com', sub: subject, exp: clock.now / 1000 + 12 * 3600 });
  });

  it('are signed once per audience and reused for an hour (then re-signed)', async () => {
    const { vapid, clock, signatures } = signer();
    const fcm = await vapid.authorization('https://fcm.googleapis.com');
    expect(await vapid.authorization('https://fcm.googleapis.com')).toBe(fcm);
    expect(signatures()).toBe(1);

    const mozilla = await vapid.authorization('https://updates.push.services.mozilla.com');
    expect(mozilla).not.toBe(fcm);
    expect(signatures()).toBe(2);

    clock.advance(59 * 60_000 + 59_000);
    expect(await vapid.authorization('https://fcm.googleapis.com')).toBe(fcm);
    expect(signatures()).toBe(2);

    clock.advance(1000);
    const renewed = await vapid.authorization('https://fcm.googleapis.com');
    expect(renewed).not.toBe(fcm);
    expect(signatures()).toBe(3);
    const jwt = /t=([^,]+)/.exec(renewed)![1]!;
    const { payload } = await jwtVerify(jwt, publicKeyObject(keys.publicKey), { currentDate: clock.fn() });
    expect(payload.exp).toBe(clock.now / 1000 + 12 * 3600);
  });

  it('share one signature among concurrent first requests for an audience', async () => {
    const { vapid, signatures } = signer();
    const headers = await Promise.all(Array.from({ length: 20 }, () => vapid.authorization('https://web.push.apple.com')));
    expect(new Set(headers).size).toBe(1);
    expect(signatures()).toBe(1);
  });

  it('refuse a public key that is not a P-256 point', () => {
    expect(() => new VapidSigner({ keys: { ...keys, publicKey: Buffer.alloc(65, 1).toString('base64url') }, subject })).toThrow();
  });
});
