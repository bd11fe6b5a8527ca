import { createECDH } from 'node:crypto';
import { SubscriptionStore } from '@avatar-pipeline/webpush';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE, call, nextPlayer, startBackends, subscribeService, type Backends } from './support.js';

let backends: Backends;
let app: ReturnType<typeof subscribeService>['app'];
let store: SubscriptionStore;

beforeAll(async () => {
  backends = await startBackends();
  // The production default: https to the browser push services only.
  app = subscribeService(backends).app;
  store = new SubscriptionStore(backends.doc, TABLE);
});
afterAll(async () => {
  await backends?.close();
});

const ecdh = createECDH('prime256v1');
ecdh.generateKeys();
const point = ecdh.getPublicKey();
const valid = {
  endpoint: 'https://fcm.googleapis.com/fcm/send/fXq2zB3:APA91bHxyz',
  expirationTime: null,
  keys: { p256dh: point.toString('base64url'), auth: Buffer.alloc(16, 7).toString('base64url') },
};
const withKeys = (keys: Partial<typeof valid.keys>) => ({ ...valid, keys: { ...valid.keys, ...keys } });
/** 65 bytes starting 0x04 whose coordinates are not a point on P-256. */
const offCurve = Buffer.from(point);
offCurve[64] = offCurve[64]! ^ 0x01;

async function expectRefused(body: unknown, status: number, code: string, message?: RegExp, contentType?: string) {
  const player = nextPlayer();
  const res = await call(app, 'POST', await backends.token(player), body, contentType);
  const json = (await res.json()) as { error: { code: string; message: string } };
  expect({ status: res.status, code: json.error.code }).toEqual({ status, code });
  if (message) expect(json.error.message).toMatch(message);
  expect(await store.list(player)).toEqual([]);
}

describe('subscription validation', () => {
  it('accepts a well-formed subscription to a browser push service', async () => {
    const player = nextPlayer();
    const res = await call(app, 'POST', await backends.token(player), valid);
    expect(res.status).toBe(201);
    expect(await store.list(player)).toHaveLength(1);
  });

  it('stores the endpoint normalised, so a respelling is the same subscription', async () => {
    const player = nextPlayer();
    const token = await backends.token(player);
    const endpoint = 'https://fcm.googleapis.com/fcm/send/respelled';
    expect((await call(app, 'POST', token, { ...valid, endpoint })).status).toBe(201);
    expect((await call(app, 'POST', token, { ...valid, endpoint: 'https://FCM.googleapis.com:443/fcm/send/respelled' })).status).toBe(200);
    expect((await store.list(player)).map((s) => s.endpoint)).toEqual([endpoint]);
    expect((await call(app, 'DELETE', token, { endpoint: 'https://fcm.GOOGLEAPIS.com/fcm/send/respelled' })).status).toBe(204);
    expect(await store.list(player)).toEqual([]);
  });

  it.each([
    ['not JSON', '{"endpoint":', 400, 'invalid_json'],
    ['no keys', { endpoint: valid.endpoint }, 400, 'invalid_request'],
    ['no endpoint', { keys: valid.keys }, 400, 'invalid_request'],
    ['a numeric endpoint', { ...valid, endpoint: 42 }, 400, 'invalid_request'],
    ['a string expirationTime', { ...valid, expirationTime: 'tomorrow' }, 400, 'invalid_request'],
    ['a negative expirationTime', { ...valid, expirationTime: -1 }, 400, 'invalid_request'],
    ['a JSON array', [valid], 400, 'invalid_request'],
  ])('refuses a body with %s', async (_what, body, status, code) => {
    await expectRefused(body, status, code);
  });

  it('refuses a body that is not JSON by type (415)', async () => {
    await expectRefused(JSON.stringify(valid), 415, 'unsupported_media_type', undefined, 'text/plain');
  });

  it.each([
    ['an endpoint that is not a URL', { ...valid, endpoint: 'fcm.googleapis.com/fcm/send/x' }, 'invalid_endpoint', /absolute URL/],
    ['an endpoint over 2048 characters', { ...valid, endpoint: `${valid.endpoint}${'a'.repeat(2048)}` }, 'invalid_endpoint', /2048/],
    ['a short p256dh', withKeys({ p256dh: point.subarray(0, 64).toString('base64url') }), 'invalid_key', /keys\.p256dh must be 65 bytes/],
    ['a compressed p256dh', withKeys({ p256dh: Buffer.concat([Buffer.from([0x02]), point.subarray(1, 33)]).toString('base64url') }), 'invalid_key', /p256dh must be 65 bytes/],
    ['a p256dh not starting 0x04', withKeys({ p256dh: Buffer.concat([Buffer.from([0x05]), point.subarray(1)]).toString('base64url') }), 'invalid_key', /first byte 0x04/],
    ['a p256dh off the curve', withKeys({ p256dh: offCurve.toString('base64url') }), 'invalid_key', /not a point on the P-256 curve/],
    ['the point (0, 0)', withKeys({ p256dh: Buffer.concat([Buffer.from([0x04]), Buffer.alloc(64)]).toString('base64url') }), 'invalid_key', /not a point on the P-256 curve/],
    ['a p256dh in standard base64', withKeys({ p256dh: `${point.toString('base64url').slice(0, -2)}+/` }), 'invalid_key', /base64url/],
    ['a 15-byte auth', withKeys({ auth: Buffer.alloc(15, 1).toString('base64url') }), 'invalid_key', /keys\.auth must be 16 bytes/],
    ['a 17-byte auth', withKeys({ auth: Buffer.alloc(17, 1).toString('base64url') }), 'invalid_key', /keys\.auth must be 16 bytes/],
    ['an auth with bad characters', withKeys({ auth: 'AAAAAAAAAAAAAAAAAAAA!!' }), 'invalid_key', /keys\.auth/],
    ['an empty auth', withKeys({ auth: '' }), 'invalid_key', /keys\.auth/],
    ['an expired subscription', { ...valid, expirationTime: Date.now() - 1000 }, 'subscription_expired', /expirationTime has passed/],
  ])('refuses %s', async (_what, body, code, message) => {
    await expectRefused(body, 400, code, message);
  });

  it.each([
    // private
    'https://10.0.0.1/push',
    'https://172.16.0.1/push',
    'https://192.168.1.10/push',
    // loopback
    'https://127.0.0.1/push',
    'https://[::1]/push',
    'https://2130706433/push',
    'https://0x7f.1/push',
    'https://[::ffff:127.0.0.1]/push',
    // link-local, metadata
    'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'https://[fe80::1]/push',
    // ports, userinfo, scheme
    'https://fcm.googleapis.com:8443/fcm/send/x',
    'https://fcm.googleapis.com:80/fcm/send/x',
    'https://user:pass@fcm.googleapis.com/fcm/send/x',
    'https://user@fcm.googleapis.com/fcm/send/x',
    'http://fcm.googleapis.com/fcm/send/x',
    'ftp://fcm.googleapis.com/fcm/send/x',
    'file:///etc/passwd',
    // hosts not on the list, look-alikes
    'https://example.com/push',
    'https://internal.service.cluster.local/push',
    'https://localhost/push',
    'https://fcm.googleapis.com.evil.com/fcm/send/x',
    'https://evilfcm.googleapis.com/fcm/send/x',
    'https://push.apple.com/x',
    // what the local push emulator hands out
    'http://localhost:4000/notify/abc',
  ])('refuses the endpoint %s by default (SSRF)', async (endpoint) => {
    await expectRefused({ ...valid, endpoint }, 400, 'endpoint_not_allowed');
  });
});
