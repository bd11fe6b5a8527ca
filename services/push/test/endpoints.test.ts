/** SSRF defences at send time: the allowlist is checked again, and names resolving to private addresses are refused. */
import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressResolver } from '@avatar-pipeline/webpush';
import {
  deliver,
  deviceKeys,
  metricValue,
  newPlayerId,
  newUploadId,
  pushService,
  readyEvent,
  startFakePushService,
  startStack,
  type FakePushService,
  type Stack,
} from './harness.js';

/** A resolver that answers every name with one address, recording the names asked for. */
function resolveTo(address: string, asked: string[]): AddressResolver {
  return (hostname, _options, callback) => {
    asked.push(hostname);
    const answer: LookupAddress[] = [{ address, family: address.includes(':') ? 6 : 4 }];
    process.nextTick(() => callback(null, answer));
  };
}

describe('endpoint checks at send time', () => {
  let stack: Stack;
  let fake: FakePushService;

  beforeAll(async () => {
    stack = await startStack();
    fake = await startFakePushService();
  });
  afterAll(async () => {
    await fake?.close();
    await stack?.close();
  });

  const store = (playerId: string, endpoint: string) =>
    stack.subscriptions.upsert(playerId, { endpoint, expirationTime: null, keys: deviceKeys() }, { maxDevices: 10 });

  it('deletes, without contacting it, a stored subscription whose host is no longer allowed', async () => {
    // Allowed when it was stored; the allowlist has since changed to another host.
    const push = await pushService(stack, { allowedHosts: `localhost:${fake.port}` });
    try {
      const playerId = newPlayerId();
      await store(playerId, fake.endpoint(`${playerId}-old`));
      const res = await deliver(push.service, readyEvent(playerId, newUploadId()));
      expect(res.status).toBe(202);
      expect(fake.to(`${playerId}-old`)).toHaveLength(0);
      expect(await stack.subscriptions.list(playerId)).toEqual([]);
      expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'refused_endpoint', status_class: 'none' })).toBe(1);
      expect(await metricValue(push.service, 'avatarpipeline_push_subscriptions_pruned_total', { reason: 'endpoint_not_allowed' })).toBe(1);
    } finally {
      await push.close();
    }
  });

  it('refuses http and loopback endpoints in the default configuration', async () => {
    const push = await pushService(stack, { allowedHosts: '', allowHttp: false });
    try {
      const playerId = newPlayerId();
      await store(playerId, fake.endpoint(`${playerId}-a`));
      await store(playerId, `https://127.0.0.1/push/${playerId}-b`);
      await store(playerId, `https://169.254.169.254/latest/meta-data`);
      expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
      expect(fake.received.filter((r) => r.path.includes(playerId))).toHaveLength(0);
      expect(await stack.subscriptions.list(playerId)).toEqual([]);
      expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'refused_endpoint' })).toBe(3);
    } finally {
      await push.close();
    }
  });

  it('refuses an allowed host name that resolves to a loopback address (DNS rebinding)', async () => {
    const asked: string[] = [];
    const push = await pushService(stack, { allowedHosts: 'push.example.test', allowHttp: false, resolve: resolveTo('127.0.0.1', asked) });
    try {
      const playerId = newPlayerId();
      await store(playerId, `https://push.example.test/push/${playerId}`);
      const res = await deliver(push.service, readyEvent(playerId, newUploadId()));
      // Not a transient failure: no retry, no redelivery; the subscription stays (the name may resolve well later).
      expect(res.status).toBe(202);
      expect(asked).toEqual(['push.example.test']);
      expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'refused_endpoint', status_class: 'none' })).toBe(1);
      expect(await stack.subscriptions.list(playerId)).toHaveLength(1);
    } finally {
      await push.close();
    }
  });

  it.each(['10.1.2.3', '169.254.169.254', '::1', 'fd00::1'])('refuses a name resolving to %s', async (address) => {
    const asked: string[] = [];
    const push = await pushService(stack, { allowedHosts: 'push.example.test', allowHttp: false, resolve: resolveTo(address, asked) });
    try {
      const playerId = newPlayerId();
      await store(playerId, `https://push.example.test/push/${playerId}`);
      expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
      expect(asked).toHaveLength(1);
      expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'refused_endpoint' })).toBe(1);
    } finally {
      await push.close();
    }
  });

  it('connects through the resolver it was given (PUSH_ALLOW_HTTP lets a local name reach loopback)', async () => {
    const asked: string[] = [];
    const push = await pushService(stack, { allowedHosts: `push.example.test:${fake.port}`, resolve: resolveTo('127.0.0.1', asked) });
    try {
      const playerId = newPlayerId();
      await store(playerId, `http://push.example.test:${fake.port}/push/${playerId}`);
      expect((await deliver(push.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
      expect(asked).toEqual(['push.example.test']);
      expect(fake.to(playerId)).toHaveLength(1);
      expect(fake.to(playerId)[0]?.headers.host).toBe(`push.example.test:${fake.port}`);
    } finally {
      await push.close();
    }
  });
});
