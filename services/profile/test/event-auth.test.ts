/** Only deliveries Knative signed for profile get into /events and /dead-letter (EVENTS_OIDC_*); forged ones are 401. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '@avatar-pipeline/kit/service';
import { eventAudience } from '@avatar-pipeline/kit/topology';
import { deliverEvent, eventTokens, type EventTokens } from '@avatar-pipeline/kit/testing';
import { newPlayerId, newUploadId, processingUpload, profileService, startStack, thumbnailedEvent, type Stack } from './harness.js';

describe('profile event endpoints with delivery tokens', () => {
  let stack: Stack;
  let tokens: EventTokens;
  let service: Service;
  let dir: string;

  beforeAll(async () => {
    stack = await startStack();
    tokens = await eventTokens(eventAudience('avatar-pipeline', 'profile'));
    dir = await mkdtemp(join(tmpdir(), 'ap-profile-token-'));
    await writeFile(join(dir, 'token'), 'sink-binding-token');
    service = profileService(stack, { eventAuth: tokens.policy, sinkTokenFile: join(dir, 'token') });
  });
  afterAll(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function processing() {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await processingUpload(stack, playerId, uploadId);
    return { playerId, uploadId, event: thumbnailedEvent(playerId, uploadId, new Date().toISOString()) };
  }

  it.each(['/events', '/dead-letter'])('refuses a forged event on %s with 401 and leaves the upload alone', async (path) => {
    const { playerId, uploadId, event } = await processing();
    for (const [problem, headers] of Object.entries(await tokens.forged())) {
      const res = await deliverEvent(service.app, event, path, headers);
      expect([res.status, res.error?.code], problem).toEqual([401, 'unauthorized']);
    }
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('processing');
  });

  it('takes a thumbnailed event whose token Knative signed for profile', async () => {
    const { playerId, uploadId, event } = await processing();
    const res = await deliverEvent(service.app, event, '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(200);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('ready');
  });

  it('takes a dead letter signed for profile, and announces the failure with the SinkBinding token', async () => {
    const { playerId, uploadId, event } = await processing();
    const res = await deliverEvent(service.app, event, '/dead-letter', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(202);
    expect((await stack.uploads.get(playerId, uploadId))?.status).toBe('failed');
    const announced = stack.sink.received.find((r) => r.headers['ce-id'] === `${uploadId}.failed`);
    expect(announced?.headers.authorization).toBe('Bearer sink-binding-token');
  });
});
