/** A redelivered event notifies each device once; a claim left by a crashed delivery is retaken after its lease. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DeliveryClaims } from '../src/index.js';
import { notificationOutcomes, statusClasses } from '../src/metrics.js';
import {
  TABLE,
  deliver,
  deviceKeys,
  metricValue,
  newPlayerId,
  newUploadId,
  pushService,
  readyEvent,
  rejectedEvent,
  reviewRequestedEvent,
  startFakePushService,
  startStack,
  testClock,
  type FakePushService,
  type PushUnderTest,
  type Stack,
} from './harness.js';

describe('idempotent notifications', () => {
  let stack: Stack;
  let fake: FakePushService;
  let push: PushUnderTest;
  const clock = testClock();

  beforeAll(async () => {
    stack = await startStack();
    fake = await startFakePushService();
    push = await pushService(stack, { allowedHosts: fake.host, clock: clock.fn });
  });
  afterAll(async () => {
    await push?.close();
    await fake?.close();
    await stack?.close();
  });

  async function device(playerId: string, name: string) {
    await stack.subscriptions.upsert(playerId, { endpoint: fake.endpoint(name), expirationTime: null, keys: deviceKeys() }, { maxDevices: 10 });
  }

  it('starts from a fresh pod with every outcome at 0 (the failure-ratio alert sees the first failure)', async () => {
    const fresh = await pushService(stack, { allowedHosts: fake.host });
    try {
      const text = await (await fresh.service.app.request('/metrics')).text();
      const zeros = [...text.matchAll(/^avatarpipeline_push_notifications_total\{outcome="(\w+)",status_class="(\w+)",service="push"\} 0$/gm)].map((m) => `${m[1]} ${m[2]}`);
      expect(zeros).toHaveLength(notificationOutcomes.length * statusClasses.length);
      expect(zeros).toContain('failed 5xx');
      expect(zeros).toContain('rejected 4xx');
    } finally {
      await fresh.close();
    }
  });

  it('notifies once when the same event arrives twice', async () => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-a`);
    await device(playerId, `${playerId}-b`);
    const event = readyEvent(playerId, newUploadId());

    expect((await deliver(push.service, event)).status).toBe(202);
    expect((await deliver(push.service, event)).status).toBe(202);
    expect(fake.to(`${playerId}-a`)).toHaveLength(1);
    expect(fake.to(`${playerId}-b`)).toHaveLength(1);
    expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'skipped_duplicate' })).toBe(2);
  });

  it('notifies once when two copies arrive at the same time', async () => {
    const playerId = newPlayerId();
    await device(playerId, `${playerId}-a`);
    const event = readyEvent(playerId, newUploadId());

    const answers = await Promise.all([deliver(push.service, event), deliver(push.service, event)]);
    expect(fake.to(`${playerId}-a`)).toHaveLength(1);
    // The copy that found the claim busy asks for a redelivery, which then finds it done.
    for (const res of answers) expect([202, 500]).toContain(res.status);
    expect((await deliver(push.service, event)).status).toBe(202);
    expect(fake.to(`${playerId}-a`)).toHaveLength(1);
  });

  it('treats different outcomes of one upload as different notifications', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await device(playerId, `${playerId}-a`);
    await deliver(push.service, readyEvent(playerId, uploadId));
    await deliver(push.service, rejectedEvent(playerId, uploadId));
    expect(fake.to(`${playerId}-a`)).toHaveLength(2);
  });

  it('tells "under review" once, at high urgency, and the decision after it as another notification', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await device(playerId, `${playerId}-a`);
    expect((await deliver(push.service, reviewRequestedEvent(playerId, uploadId))).status).toBe(202);
    expect((await deliver(push.service, reviewRequestedEvent(playerId, uploadId))).status).toBe(202);
    expect(fake.to(`${playerId}-a`)).toHaveLength(1);
    expect(fake.to(`${playerId}-a`)[0]?.headers['urgency']).toBe('high');
    await deliver(push.service, readyEvent(playerId, uploadId));
    const sent = fake.to(`${playerId}-a`);
    expect(sent).toHaveLength(2);
    // The same topic: a push service still holding "under review" replaces it with the decision.
    expect(sent[1]?.headers['topic']).toBe(sent[0]?.headers['topic']);
  });

  it('sends after the lease of a claim left by a crashed delivery runs out', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await device(playerId, `${playerId}-a`);
    const [subscription] = await stack.subscriptions.list(playerId);
    // A delivery that claimed the device and died before sending.
    const crashed = new DeliveryClaims(stack.doc, TABLE, 30_000, clock.fn);
    expect((await crashed.claim(`${uploadId}.ready`, subscription!.hash)).kind).toBe('claimed');

    const held = await deliver(push.service, readyEvent(playerId, uploadId));
    expect(held.status).toBe(500);
    expect(fake.to(`${playerId}-a`)).toHaveLength(0);
    expect(await metricValue(push.service, 'avatarpipeline_push_notifications_total', { outcome: 'deferred' })).toBeGreaterThanOrEqual(1);

    clock.advance(30_001);
    expect((await deliver(push.service, readyEvent(playerId, uploadId))).status).toBe(202);
    expect(fake.to(`${playerId}-a`)).toHaveLength(1);
  });

  // The fault suite found it: a failed `done` write used to fail the event, and its redelivery sent
  // the message again once the claim's lease ran out.
  describe('when the claim cannot be marked done after the push service took the message', () => {
    let failures = 0;
    let faulty: PushUnderTest;
    beforeAll(async () => {
      faulty = await pushService(stack, {
        allowedHosts: fake.host,
        clock: clock.fn,
        injectFaults: ({ claims }) => {
          const complete = claims.complete.bind(claims);
          vi.spyOn(claims, 'complete').mockImplementation((...args) => {
            if (failures === 0) return complete(...args);
            failures -= 1;
            return Promise.reject(new Error('injected: the table is unreachable'));
          });
        },
      });
    });
    afterAll(() => faulty?.close());

    it('retries the record and answers 202 when it succeeds', async () => {
      const playerId = newPlayerId();
      await device(playerId, `${playerId}-a`);
      failures = 2;
      expect((await deliver(faulty.service, readyEvent(playerId, newUploadId()))).status).toBe(202);
      expect(failures).toBe(0);
      expect(fake.to(`${playerId}-a`)).toHaveLength(1);
      expect(await metricValue(faulty.service, 'avatarpipeline_push_claims_unrecorded_total', {})).toBe(0);
    });

    it('settles the device anyway and never sends it again from this pod', async () => {
      const playerId = newPlayerId();
      await device(playerId, `${playerId}-a`);
      const event = readyEvent(playerId, newUploadId());
      failures = Number.POSITIVE_INFINITY;
      expect((await deliver(faulty.service, event)).status).toBe(202);
      expect(await metricValue(faulty.service, 'avatarpipeline_push_claims_unrecorded_total', {})).toBe(1);
      // A redelivery after the claim's lease ran out finds the device settled in memory.
      clock.advance(60_000);
      expect((await deliver(faulty.service, event)).status).toBe(202);
      failures = 0;
      expect(fake.to(`${playerId}-a`)).toHaveLength(1);
    });
  });
});
