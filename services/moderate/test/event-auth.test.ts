/** Only deliveries Knative signed for moderate get in (EVENTS_OIDC_*): a forged event from inside the cluster is 401. */
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { Service } from '@avatar-pipeline/kit/service';
import { eventAudience } from '@avatar-pipeline/kit/topology';
import { deliverEvent, eventTokens, memoryObjects, type EventTokens } from '@avatar-pipeline/kit/testing';
import { createModerateService, moderateEnv, moderateStores } from '../src/index.js';
import { fakeProvider, objectCreated } from './helpers.js';

describe('moderate /events with delivery tokens', () => {
  let tokens: EventTokens;
  let provider: ReturnType<typeof fakeProvider>;
  let service: Service;
  const event = objectCreated('uploads/player-1/0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b', '0123456789abcdef0123456789abcdef');

  beforeAll(async () => {
    tokens = await eventTokens(eventAudience('avatar-pipeline', 'moderate'));
    provider = fakeProvider();
    // No store is ever reached: refused events stop at the token, the accepted one names another bucket.
    const config = loadConfig(moderateEnv);
    service = createModerateService({
      config,
      objects: memoryObjects('another-bucket'),
      stores: moderateStores(dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' }), config.TABLE_NAME),
      provider,
      logger: createLogger('moderate-test', 'silent'),
      eventAuth: tokens.policy,
    });
  });

  it('refuses a forged event with 401, whatever is wrong with its token', async () => {
    for (const [problem, headers] of Object.entries(await tokens.forged())) {
      const res = await deliverEvent(service.app, event, '/events', headers);
      expect([res.status, res.error?.code], problem).toEqual([401, 'unauthorized']);
    }
    expect(provider.calls).toEqual([]);
  });

  it('handles an event whose token Knative signed for moderate', async () => {
    const res = await deliverEvent(service.app, event, '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(202);
  });
});
