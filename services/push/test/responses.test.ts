/** How push answers each push service response, against a scriptable local push service. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deliver,
  deviceKeys,
  failedEvent,
  metricValue,
  newPlayerId,
  newUploadId,
  pushService,
  readyEvent,
  rejectedEvent,
  startFakePushService,
  startStack,
  type FakePushService,
  type PushUnderTest,
  type Stack,
} from './harness.js';

describe('push service responses', () => {
  let stack: Stack;
  let fake: FakePushService;
  let push: PushUnderTest;

  beforeAll(async () => {
    stack = await startStack();
    fake = await startFakePushService();
    push = await pushService(stack, { allowedHosts: fake.host });
  });
  afterAll(async () => {
    await push?.close();
    await fake?.close();
    await stack?.close();
  });

  async function device(playerId: string, name: string) {
    await stack.subscriptions.upsert(playerId, { endpoint: fake.endpoint(name), expirationTime: null, keys: deviceKeys() }, { maxDevices: 10 });
  }
  const count = (outcome: string, statusClass: string) => metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome, status_class: statusClass });

  it('sends with TTL, Urgency, Topic, aes128gcm and a VAPID Authorization header', async () => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-a`);
    const res = await deliver(push.service, readyEvent(playerId, newUploadId()));
    expect(res.status).toBe(202);
    const [request] = fake.to(`${playerId}-a`);
    expect(request?.headers).toMatchObject({
      ttl: '86400',
      urgency: 'high',
      'content-encoding': 'aes128gcm',
      'content-type': 'application/octet-stream',
    });
    expect(request?.headers.topic).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(request?.headers.authorization).toMatch(new RegExp(`^vapid t=[\\w-]+\\.[\\w-]+\\.[\\w-]+, k=${stack.keys.publicKey}$`));
    // aes128gcm: 86-byte header (salt, record size, key id length, 65-byte key) + ciphertext + 16-byte tag.
    expect(request?.body.length).toBeGreaterThan(86 + 16);
  });

  it('uses one Topic per player and normal urgency for failures', async () => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-a`);
    await device(playerId, `${playerId}-b`);
    expect((await deliver(push.service, failedEvent(playerId, newUploadId()))).status).toBe(202);
    const [a] = fake.to(`${playerId}-a`);
    const [b] = fake.to(`${playerId}-b`);
    expect(a?.headers.urgency).toBe('normal');
    expect(a?.headers.topic).toBe(b?.headers.topic);

    const other = newPlayerId();
    await device(other, `${other}-a`);
    await deliver(push.service, rejectedEvent(other, newUploadId()));
    expect(fake.to(`${other}-a`)[0]?.headers.urgency).toBe('high');
    expect(fake.to(`${other}-a`)[0]?.headers.topic).not.toBe(a?.headers.topic);
  });

  it('waits as long as Retry-After says after a 429, then sends', async () => {
    const playerId = newPlayerId();
    const name = `${playerId}-a`;
    await device(playerId, name);
    fake.script(name, { status: 429, headers: { 'retry-after': '7' }, body: 'slow down' });
    const before = await count('sent', '2xx');
    push.sleeps.length = 0;

    const res = await deliver(push.service, readyEvent(playerId, newUploadId()));
    expect(res.status).toBe(202);
    expect(fake.to(name)).toHaveLength(2);
    expect(push.sleeps).toEqual([7000]);
    expect(await count('sent', '2xx')).toBe(before + 1);
    expect(await metricValue(push.service, 'avatarpipeline_push_send_duration_seconds', { status_class: '4xx' }, 'avatarpipeline_push_send_duration_seconds_count')).toBeGreaterThanOrEqual(1);
  });

  it('retries a 500 with backoff, then sends', async () => {
    const playerId = newPlayerId();
    const name = `${playerId}-a`;
    await device(playerId, name);
    fake.script(name, { status: 500 }, { status: 503 });
    push.sleeps.length = 0;

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    expect(fake.to(name)).toHaveLength(3);
    expect(push.sleeps).toHaveLength(2);
    // 250 ms then 500 ms, each with up to half taken off as jitter.
    expect(push.sleeps[0]).toBeGreaterThanOrEqual(125);
    expect(push.sleeps[0]).toBeLessThanOrEqual(250);
    expect(push.sleeps[1]).toBeGreaterThanOrEqual(250);
    expect(push.sleeps[1]).toBeLessThanOrEqual(500);
  });

  it('gives up after the last attempt, answers 500, and sends on the redelivery', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    const name = `${playerId}-a`;
    await device(playerId, name);
    await device(playerId, `${playerId}-b`);
    fake.script(name, { status: 502 }, { status: 502 }, { status: 502 });
    const failedBefore = await count('failed', '5xx');

    const first = await deliver(push.service, readyEvent(playerId, uploadId));
    expect(first.status).toBe(500);
    expect(fake.to(name)).toHaveLength(3);
    expect(fake.to(`${playerId}-b`)).toHaveLength(1);
    expect(await count('failed', '5xx')).toBe(failedBefore + 1);

    // The broker redelivers: the failed device is tried again, the notified one is not.
    const second = await deliver(push.service, readyEvent(playerId, uploadId));
    expect(second.status).toBe(202);
    expect(fake.to(name)).toHaveLength(4);
    expect(fake.to(`${playerId}-b`)).toHaveLength(1);
  });

  it('gives up at once when Retry-After asks for longer than the time budget left', async () => {
    const playerId = newPlayerId();
    const name = `${playerId}-a`;
    await device(playerId, name);
    fake.script(name, { status: 429, headers: { 'retry-after': '3600' } });
    push.sleeps.length = 0;

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(500);
    expect(fake.to(name)).toHaveLength(1);
    expect(push.sleeps).toEqual([]);
  });

  it('gives up on a push service that does not answer within the time budget', async () => {
    const impatient = await pushService(stack, { allowedHosts: fake.host, config: { PUSH_TIMEOUT_MS: 1000, PUSH_MAX_ATTEMPTS: 2 } });
    try {
      const playerId = newPlayerId();
      const name = `${playerId}-a`;
      await device(playerId, name);
      fake.script(name, { status: 0 }, { status: 0 });
      const started = Date.now();
      expect((await deliver(impatient.service, readyEvent(playerId, newUploadId()))).status).toBe(500);
      // Two attempts of half the budget each.
      expect(Date.now() - started).toBeLessThan(2500);
      expect(fake.to(name)).toHaveLength(2);
      expect(await metricValue(impatient.service, 'avatarpipeline_push_notifications_total', { outcome: 'failed', status_class: 'none' })).toBe(1);
    } finally {
      await impatient.close();
    }
  });

  it.each([
    [413, 'payload too large'],
    [403, 'the VAPID key does not match the subscription'],
    [400, 'bad request'],
    [401, 'invalid JWT'],
  ])('counts a %i as rejected without retrying or deleting the subscription', async (status, body) => {
    const playerId = newPlayerId();
    const name = `${playerId}-a`;
    await device(playerId, name);
    fake.script(name, { status, body });
    const before = await count('rejected', '4xx');

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    expect(fake.to(name)).toHaveLength(1);
    expect(await count('rejected', '4xx')).toBe(before + 1);
    expect(await stack.subscriptions.list(playerId)).toHaveLength(1);
  });

  it.each([404, 410])('deletes the subscription on a %i', async (status) => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-gone`);
    await device(playerId, `${playerId}-kept`);
    fake.script(`${playerId}-gone`, { status });
    const before = await metricValue(push.service, 'avatarpipeline_push_subscriptions_pruned_total', { reason: 'gone' });

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    const left = await stack.subscriptions.list(playerId);
    expect(left.map((s) => s.endpoint)).toEqual([fake.endpoint(`${playerId}-kept`)]);
    expect(await metricValue(push.service, 'avatarpipeline_push_subscriptions_pruned_total', { reason: 'gone' })).toBe(before + 1);
    expect(await count('pruned', '4xx')).toBeGreaterThanOrEqual(1);
  });

  it('goes by the status even when the answer has a body longer than it reads', async () => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-gone`);
    await device(playerId, `${playerId}-sent`);
    fake.script(`${playerId}-gone`, { status: 410, body: 'gone '.repeat(20_000) });
    fake.script(`${playerId}-sent`, { status: 201, body: 'created '.repeat(20_000) });

    expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
    expect(fake.to(`${playerId}-sent`)).toHaveLength(1);
    const left = await stack.subscriptions.list(playerId);
    expect(left.map((s) => s.endpoint)).toEqual([fake.endpoint(`${playerId}-sent`)]);
  });

  it('answers 202 for a player without devices', async () => {
    expect((await deliver(push.service, readyEvent(newPlayerId(), newUploadId()))).status).toBe(202);
  });

  it('refuses malformed event data with 400 (dead letter, no retry)', async () => {
    const event = readyEvent(newPlayerId(), newUploadId());
    const res = await deliver(push.service, { ...event, data: { ...(event.data as object), avatar: undefined } });
    expect(res.status).toBe(400);
  });
});
