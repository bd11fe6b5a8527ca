/** Only deliveries Knative signed for thumbnail get in (EVENTS_OIDC_*): a forged event from inside the cluster is 401. */
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { Service } from '@avatar-pipeline/kit/service';
import { EventType, eventAudience } from '@avatar-pipeline/kit/topology';
import { deliverEvent, eventTokens, memoryObjects, type EventTokens } from '@avatar-pipeline/kit/testing';
import { createThumbnailService } from '../src/index.js';
import { approvedData, stores, testConfig } from './helpers.js';

describe('thumbnail /events with delivery tokens', () => {
  let tokens: EventTokens;
  let service: Service;
  // Names an object in another bucket: the handler refuses it without touching the store.
  const data = approvedData('player-1', '0123456789abcdef0123456789abcdef', { bucket: 'another-bucket' });
  const event = { id: `${data.uploadId}.approved`, source: '/avatar-pipeline/moderate', type: EventType.approved, subject: data.key, data };

  beforeAll(async () => {
    tokens = await eventTokens(eventAudience('avatar-pipeline', 'thumbnail'));
    service = createThumbnailService({
      stores,
      config: testConfig(),
      objects: memoryObjects(),
      logger: createLogger('thumbnail-test', 'silent'),
      eventAuth: tokens.policy,
    });
  });

  it('refuses a forged event with 401, whatever is wrong with its token', async () => {
    for (const [problem, headers] of Object.entries(await tokens.forged())) {
      const res = await deliverEvent(service.app, event, '/events', headers);
      expect([res.status, res.error?.code], problem).toEqual([401, 'unauthorized']);
    }
  });

  it('hands an event whose token Knative signed for thumbnail to its handler', async () => {
    const res = await deliverEvent(service.app, event, '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect([res.status, res.error?.code]).toEqual([422, 'foreign_object']);
  });
});
