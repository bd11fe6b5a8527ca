/** Only deliveries Knative signed for push get in (EVENTS_OIDC_*): a forged outcome from inside the cluster is 401, never a push. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventAudience } from '@avatar-pipeline/kit/topology';
import { deliverEvent, eventTokens, type EventTokens } from '@avatar-pipeline/kit/testing';
import {
  deviceKeys,
  newPlayerId,
  newUploadId,
  pushService,
  readyEvent,
  startFakePushService,
  startStack,
  type FakePushService,
  type PushUnderTest,
  type Stack,
} from './harness.js';

describe('push /events with delivery tokens', () => {
  let stack: Stack;
  let fake: FakePushService;
  let tokens: EventTokens;
  let push: PushUnderTest;

  beforeAll(async () => {
    stack = await startStack();
    fake = await startFakePushService();
    tokens = await eventTokens(eventAudience('avatar-pipeline', 'push'));
    push = await pushService(stack, { allowedHosts: fake.host, eventAuth: tokens.policy });
  });
  afterAll(async () => {
    await push?.close();
    await fake?.close();
    await stack?.close();
  });

  async function playerWithDevice() {
    const playerId = newPlayerId();
    await stack.subscriptions.upsert(playerId, { endpoint: fake.endpoint(playerId), expirationTime: null, keys: deviceKeys() }, { maxDevices: 10 });
    return playerId;
  }

  it('refuses a forged event with 401 and pushes nothing', async () => {
    const playerId = await playerWithDevice();
    const event = readyEvent(playerId, newUploadId());
    for (const [problem, headers] of Object.entries(await tokens.forged())) {
      const res = await deliverEvent(push.service.app, event, '/events', headers);
      expect([res.status, res.error?.code], problem).toEqual([401, 'unauthorized']);
    }
    expect(fake.to(playerId)).toEqual([]);
  });

  it('notifies the player for an event whose token Knative signed for push', async () => {
    const playerId = await playerWithDevice();
    const res = await deliverEvent(push.service.app, readyEvent(playerId, newUploadId()), '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(202);
    expect(fake.to(playerId)).toHaveLength(1);
  });
});
