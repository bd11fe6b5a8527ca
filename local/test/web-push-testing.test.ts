import webpush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebPushTesting, type WebPushTesting } from '../src/index.js';

const vapid = webpush.generateVAPIDKeys();

/** What push does: web-push builds the encrypted request, fetch sends it. */
async function send(subscription: { endpoint: string; keys: { p256dh: string; auth: string } }, payload: string, keys = vapid): Promise<number> {
  const { endpoint, method, headers, body } = webpush.generateRequestDetails(subscription, payload, {
    vapidDetails: { subject: 'mailto:ops@avatar-pipeline.example', ...keys },
    TTL: 60,
  });
  const { 'Content-Length': _length, ...rest } = headers as Record<string, string>;
  const res = await fetch(endpoint, { method, headers: rest, body: body ?? null });
  await res.arrayBuffer();
  return res.status;
}

describe('web-push-testing launcher', () => {
  let emulator: WebPushTesting;
  beforeAll(async () => {
    emulator = await startWebPushTesting();
  });
  afterAll(async () => {
    await emulator?.close();
  });

  it('issues subscriptions shaped like a browser\'s toJSON()', async () => {
    const { subscription, clientHash } = await emulator.subscribe(vapid.publicKey);
    expect(emulator.url).toBe(`http://localhost:${emulator.port}`);
    expect(emulator.host).toBe(`localhost:${emulator.port}`);
    expect(subscription.endpoint).toBe(`${emulator.url}/notify/${clientHash}`);
    expect(subscription.expirationTime).toBeNull();
    expect(Buffer.from(subscription.keys.p256dh, 'base64url')).toHaveLength(65);
    expect(Buffer.from(subscription.keys.auth, 'base64url')).toHaveLength(16);
  });

  it('decrypts what is sent with the right VAPID key, refuses another key, and expires on demand', async () => {
    const { subscription, clientHash } = await emulator.subscribe(vapid.publicKey);
    expect(await send(subscription, 'first')).toBe(201);
    expect(await send(subscription, 'second')).toBe(201);
    expect(await emulator.notifications(clientHash)).toEqual(['first', 'second']);

    expect(await send(subscription, 'forged', webpush.generateVAPIDKeys())).toBe(400);
    expect(await emulator.notifications(clientHash)).toEqual(['first', 'second']);

    await emulator.expire(clientHash);
    expect(await send(subscription, 'late')).toBe(410);
  });

  it('stops on close and frees its port', async () => {
    const another = await startWebPushTesting();
    expect(another.port).not.toBe(emulator.port);
    await another.close();
    await expect(fetch(`${another.url}/status`, { method: 'POST' })).rejects.toThrow();
  });
});
