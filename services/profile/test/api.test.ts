import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '@avatar-pipeline/kit/service';
import { MEDIA, deliver, newPlayerId, newUploadId, processingUpload, profileService, startStack, thumbnailedEvent, type Stack } from './harness.js';

describe('HTTP API', () => {
  let stack: Stack;
  let service: Service;
  const owner = newPlayerId();
  const other = newPlayerId();
  const uploadId = newUploadId();
  const pendingId = newUploadId();
  let token: string;
  let otherToken: string;

  const get = (path: string, bearer?: string) => service.app.request(path, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});

  beforeAll(async () => {
    stack = await startStack();
    service = profileService(stack);
    await processingUpload(stack, owner, uploadId);
    await stack.uploads.createPending({ playerId: owner, uploadId: pendingId, contentType: 'image/jpeg', maxBytes: 1000 });
    const res = await deliver(service, '/events', thumbnailedEvent(owner, uploadId, new Date().toISOString()));
    expect(res.status).toBe(200);
    token = await stack.issuer.mint(owner);
    otherToken = await stack.issuer.mint(other);
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('GET /v1/players/{playerId}/profile', () => {
    it('returns the current avatar to any signed-in player, briefly cacheable', async () => {
      const res = await get(`/v1/players/${owner}/profile`, otherToken);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('private, max-age=5');
      const body = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['avatar', 'playerId', 'updatedAt']);
      expect(body).toMatchObject({
        playerId: owner,
        avatar: {
          thumbnails: {
            '64': `${MEDIA}/avatars/${owner}/${uploadId}/64.webp`,
            '128': `${MEDIA}/avatars/${owner}/${uploadId}/128.webp`,
            '256': `${MEDIA}/avatars/${owner}/${uploadId}/256.webp`,
          },
          full: `${MEDIA}/avatars/${owner}/${uploadId}/full.webp`,
        },
      });
    });

    it('answers 404 (not cached) for a player without an avatar', async () => {
      const res = await get(`/v1/players/${other}/profile`, token);
      expect(res.status).toBe(404);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({ error: { code: 'profile_not_found', message: 'this player has no avatar yet' } });
    });

    it('answers 400 for an invalid player id', async () => {
      const res = await get('/v1/players/bad%20id!/profile', token);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_player_id' } });
    });

    it('answers 401 without a valid token', async () => {
      expect((await get(`/v1/players/${owner}/profile`)).status).toBe(401);
      expect((await get(`/v1/players/${owner}/profile`, `${token.slice(0, -4)}AAAA`)).status).toBe(401);
    });
  });

  describe('GET /v1/uploads/{uploadId}', () => {
    it('shows the owner a ready upload with its avatar, never cached', async () => {
      const res = await get(`/v1/uploads/${uploadId}`, token);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['avatar', 'createdAt', 'status', 'updatedAt', 'uploadId']);
      expect(body).toMatchObject({ uploadId, status: 'ready', avatar: { full: `${MEDIA}/avatars/${owner}/${uploadId}/full.webp` } });
    });

    it('shows a pending upload without optional fields', async () => {
      const body = (await (await get(`/v1/uploads/${pendingId}`, token)).json()) as Record<string, unknown>;
      expect(body).toEqual({ uploadId: pendingId, status: 'pending', createdAt: expect.any(String), updatedAt: expect.any(String) });
    });

    it('shows a rejected upload with reason and labels', async () => {
      const rejectedId = newUploadId();
      await processingUpload(stack, owner, rejectedId);
      const reason = { code: 'inappropriate_content', message: 'The image was not accepted' };
      const labels = [{ name: 'Porn', confidence: 97.5 }];
      await stack.uploads.finish(owner, rejectedId, 'rejected', { reason, labels });
      const body = await (await get(`/v1/uploads/${rejectedId}`, token)).json();
      expect(body).toMatchObject({ uploadId: rejectedId, status: 'rejected', reason, labels });
    });

    it("answers 404 for another player's upload and for an unknown one", async () => {
      const res = await get(`/v1/uploads/${uploadId}`, otherToken);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: { code: 'upload_not_found', message: 'no such upload' } });
      expect((await get(`/v1/uploads/${newUploadId()}`, token)).status).toBe(404);
    });

    it('answers 400 for a malformed upload id and 401 without a token', async () => {
      const bad = await get('/v1/uploads/not-a-uuid', token);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: { code: 'invalid_upload_id' } });
      // A v4 UUID is not an upload id either.
      expect((await get('/v1/uploads/3b241101-e2bb-4255-8caf-4136c566a962', token)).status).toBe(400);
      expect((await get(`/v1/uploads/${uploadId}`)).status).toBe(401);
    });
  });

  it('is ready when DynamoDB answers', async () => {
    expect((await service.app.request('/readyz')).status).toBe(200);
  });
});
