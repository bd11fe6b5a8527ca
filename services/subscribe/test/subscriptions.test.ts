import { startWebPushTesting, type EmulatedSubscription, type WebPushTesting } from '@avatar-pipeline/local';
import { SubscriptionStore, endpointHash } from '@avatar-pipeline/webpush';
import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeStores } from '../src/index.js';
import { TABLE, call, emulatorPolicy, nextPlayer, startBackends, subscribeService, type Backends } from './support.js';

let backends: Backends;
let emulator: WebPushTesting;
let app: ReturnType<typeof subscribeService>['app'];
let store: SubscriptionStore;

beforeAll(async () => {
  [backends, emulator] = await Promise.all([startBackends(), startWebPushTesting()]);
  app = subscribeService(backends, { policy: emulatorPolicy(emulator.host) }).app;
  store = new SubscriptionStore(backends.doc, TABLE);
});
afterAll(async () => {
  await emulator?.close();
  await backends?.close();
});

const subscribeDevice = () => emulator.subscribe(backends.vapid.publicKey);

/** Sends one notification to a stored subscription, as push does: web-push builds the request, fetch sends it. */
async function send(subscription: { endpoint: string; keys: { p256dh: string; auth: string } }, payload: string): Promise<number> {
  const { endpoint, method, headers, body } = webpush.generateRequestDetails(subscription, payload, {
    vapidDetails: { subject: 'mailto:ops@avatar-pipeline.example', publicKey: backends.vapid.publicKey, privateKey: backends.vapid.privateKey },
    TTL: 60,
  });
  const { 'Content-Length': _length, ...rest } = headers as Record<string, string>;
  const res = await fetch(endpoint, { method, headers: rest, body: body ?? null });
  await res.arrayBuffer();
  return res.status;
}

describe('subscribe API', () => {
  it('serves the VAPID public key without authentication, cacheable for five minutes', async () => {
    const res = await app.request('/v1/push/vapid-public-key');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(await res.json()).toEqual({ publicKey: backends.vapid.publicKey });
  });

  it('stores a subscription issued by a push service, which then receives our notifications', async () => {
    const player = nextPlayer();
    const device: EmulatedSubscription = await subscribeDevice();
    const res = await call(app, 'POST', await backends.token(player), device.subscription);
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ endpointHash: endpointHash(device.subscription.endpoint), expirationTime: null });

    const [stored] = await store.list(player);
    expect(stored).toMatchObject({ playerId: player, endpoint: device.subscription.endpoint, keys: device.subscription.keys, expirationTime: null });
    // The emulator verifies our VAPID signature and decrypts with the keys the browser gave.
    expect(await send(stored!, '{"hello":"player"}')).toBe(201);
    expect(await emulator.notifications(device.clientHash)).toEqual(['{"hello":"player"}']);
  });

  it('updates a re-subscribed endpoint in place (200), keeping one item', async () => {
    const player = nextPlayer();
    const token = await backends.token(player);
    const device = await subscribeDevice();
    expect((await call(app, 'POST', token, device.subscription)).status).toBe(201);
    const expirationTime = Date.now() + 7 * 24 * 3600_000;
    const res = await call(app, 'POST', token, { ...device.subscription, expirationTime, extraMemberFromSomeLibrary: true });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ endpointHash: endpointHash(device.subscription.endpoint), expirationTime });
    const list = await store.list(player);
    expect(list).toHaveLength(1);
    expect(list[0]?.expirationTime).toBe(expirationTime);
  });

  it('unsubscribes idempotently (204 whether or not it existed)', async () => {
    const player = nextPlayer();
    const token = await backends.token(player);
    const device = await subscribeDevice();
    await call(app, 'POST', token, device.subscription);
    expect((await call(app, 'DELETE', token, { endpoint: device.subscription.endpoint })).status).toBe(204);
    expect(await store.list(player)).toEqual([]);
    expect((await call(app, 'DELETE', token, { endpoint: device.subscription.endpoint })).status).toBe(204);
    expect((await call(app, 'DELETE', token, { endpoint: 'not even a url' })).status).toBe(204);
    const bad = await call(app, 'DELETE', token, { endpoint: 42 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('evicts the oldest device beyond the limit', async () => {
    const limited = subscribeService(backends, { policy: emulatorPolicy(emulator.host), maxDevices: 2 }).app;
    const player = nextPlayer();
    const token = await backends.token(player);
    const devices = [await subscribeDevice(), await subscribeDevice(), await subscribeDevice()];
    for (const device of devices) {
      expect((await call(limited, 'POST', token, device.subscription)).status).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct createdAt
    }
    expect((await store.list(player)).map((s) => s.endpoint)).toEqual(devices.slice(1).map((d) => d.subscription.endpoint));
  });

  it('requires a valid bearer token', async () => {
    const device = await subscribeDevice();
    const none = await call(app, 'POST', undefined, device.subscription);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect((await call(app, 'POST', 'not.a.token', device.subscription)).status).toBe(401);
    expect((await call(app, 'DELETE', undefined, { endpoint: device.subscription.endpoint })).status).toBe(401);
  });

  it('never lets a player remove another player\'s subscription', async () => {
    const [alice, bob] = [nextPlayer(), nextPlayer()];
    const device = await subscribeDevice();
    await call(app, 'POST', await backends.token(alice), device.subscription);
    expect((await call(app, 'DELETE', await backends.token(bob), { endpoint: device.subscription.endpoint })).status).toBe(204);
    expect((await store.list(alice)).map((s) => s.endpoint)).toEqual([device.subscription.endpoint]);
  });

  it('refuses another player\'s endpoint under different keys (409); moves it when the keys are the same browser\'s', async () => {
    const [alice, bob] = [nextPlayer(), nextPlayer()];
    const device = await subscribeDevice();
    const other = await subscribeDevice();
    await call(app, 'POST', await backends.token(alice), device.subscription);

    const hijack = await call(app, 'POST', await backends.token(bob), { ...device.subscription, keys: other.subscription.keys });
    expect(hijack.status).toBe(409);
    expect(await hijack.json()).toMatchObject({ error: { code: 'endpoint_in_use' } });
    expect(await store.list(alice)).toHaveLength(1);
    expect(await store.list(bob)).toEqual([]);

    const handedOver = await call(app, 'POST', await backends.token(bob), device.subscription);
    expect(handedOver.status).toBe(201);
    expect(await store.list(alice)).toEqual([]);
    expect((await store.list(bob)).map((s) => s.endpoint)).toEqual([device.subscription.endpoint]);
  });

  it('rate-limits subscription changes per player', async () => {
    const limited = subscribeService(backends, { policy: emulatorPolicy(emulator.host), rateLimit: { subscriptions: 2, windowSeconds: 60 } }).app;
    const token = await backends.token(nextPlayer());
    const device = await subscribeDevice();
    expect((await call(limited, 'POST', token, device.subscription)).status).toBe(201);
    expect((await call(limited, 'POST', token, device.subscription)).status).toBe(200);
    const third = await call(limited, 'DELETE', token, { endpoint: device.subscription.endpoint });
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await third.json()).toMatchObject({ error: { code: 'rate_limited' } });
    // Another player is not affected.
    expect((await call(limited, 'POST', await backends.token(nextPlayer()), (await subscribeDevice()).subscription)).status).toBe(201);
  });

  it('counts outcomes with bounded labels', async () => {
    const counted = subscribeService(backends, { policy: emulatorPolicy(emulator.host) });
    const token = await backends.token(nextPlayer());
    const device = await subscribeDevice();
    await call(counted.app, 'POST', token, device.subscription);
    await call(counted.app, 'POST', token, device.subscription);
    await call(counted.app, 'DELETE', token, { endpoint: device.subscription.endpoint });
    await call(counted.app, 'DELETE', token, { endpoint: device.subscription.endpoint });
    await call(counted.app, 'POST', token, { ...device.subscription, endpoint: 'https://169.254.169.254/' });
    await call(counted.app, 'POST', token, '{');
    const text = await counted.metrics.registry.metrics();
    expect(text).toMatch(/avatarpipeline_push_subscriptions_total\{op="created",service="subscribe"\} 1/);
    expect(text).toMatch(/avatarpipeline_push_subscriptions_total\{op="updated",service="subscribe"\} 1/);
    expect(text).toMatch(/avatarpipeline_push_subscriptions_total\{op="deleted",service="subscribe"\} 1/);
    expect(text).toMatch(/avatarpipeline_push_subscriptions_total\{op="rejected",code="endpoint_not_allowed",service="subscribe"\} 1/);
    expect(text).toMatch(/avatarpipeline_push_subscriptions_total\{op="rejected",code="invalid_json",service="subscribe"\} 1/);
  });

  it('is ready with its table, not without', async () => {
    expect((await app.request('/readyz')).status).toBe(200);
    const missing = subscribeService(backends, {}, { stores: subscribeStores(backends.doc, 'no-such-table') }).app;
    expect((await missing.request('/readyz')).status).toBe(503);
  });

  it('answers 503 when the table is unavailable, storing nothing', async () => {
    const broken = subscribeService(backends, { policy: emulatorPolicy(emulator.host) }, { stores: subscribeStores(backends.doc, 'no-such-table') }).app;
    const res = await call(broken, 'POST', await backends.token(nextPlayer()), (await subscribeDevice()).subscription);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ error: { code: 'unavailable' } });
  });
});
