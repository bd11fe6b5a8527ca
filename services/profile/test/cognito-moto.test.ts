/**
 * The Cognito `picture` mirror against a real user pool (moto's server, local/src/stand-ins/moto.ts): the
 * client main.ts builds (`cognitoClient` with AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER), the
 * attribute read back with AdminGetUser, and the errors Cognito answers for a missing user or
 * pool. Cognito failing or throttling is injected with a fake picture sync in ready.test.ts and
 * dead-letter.test.ts: moto does not fail on demand.
 */
import { AdminCreateUserCommand, AdminGetUserCommand, CreateUserPoolCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { motoSkipReason, startMoto, type MotoServer } from '@avatar-pipeline/local';
import { cognitoClient, cognitoPictureSync, syncPicture } from '../src/cognito.js';
import { ProfileStore } from '../src/index.js';
import { MEDIA, TABLE, deliver, metricValue, newPlayerId, newUploadId, processingUpload, profileService, startStack, thumbnailedEvent, type Stack } from './harness.js';

const REGION = 'us-east-1';
const skipped = motoSkipReason();
const picture = (playerId: string, uploadId: string) => `${MEDIA}/avatars/${playerId}/${uploadId}/128.webp`;

describe.skipIf(skipped)(`Cognito picture against moto${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let moto: MotoServer;
  let stack: Stack;
  let cognito: CognitoIdentityProviderClient;
  let userPoolId: string;

  beforeAll(async () => {
    [moto, stack] = await Promise.all([startMoto(), startStack()]);
    cognito = cognitoClient(REGION, moto.endpoint);
    const { UserPool } = await cognito.send(new CreateUserPoolCommand({ PoolName: 'players' }));
    userPoolId = UserPool!.Id!;
  });
  afterAll(async () => {
    cognito?.destroy();
    await stack?.close();
    await moto?.close();
  });

  /** A player with a Cognito user named by the player id, as the pool's sign-up makes them. */
  async function player(): Promise<string> {
    const playerId = newPlayerId();
    await cognito.send(new AdminCreateUserCommand({ UserPoolId: userPoolId, Username: playerId, MessageAction: 'SUPPRESS' }));
    return playerId;
  }

  async function pictureOf(playerId: string): Promise<string | undefined> {
    const { UserAttributes = [] } = await cognito.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: playerId }));
    return UserAttributes.find((a) => a.Name === 'picture')?.Value;
  }

  describe('cognitoPictureSync', () => {
    it('sets picture with AdminUpdateUserAttributes, replacing the previous one', async () => {
      const playerId = await player();
      const sync = cognitoPictureSync(cognito, userPoolId);
      expect(await sync.setPicture(playerId, 'https://cdn.example/a.webp')).toBe('updated');
      expect(await pictureOf(playerId)).toBe('https://cdn.example/a.webp');
      expect(await syncPicture(sync, playerId, 'https://cdn.example/b.webp')).toEqual({ outcome: 'ok', attempts: 1 });
      expect(await pictureOf(playerId)).toBe('https://cdn.example/b.webp');
    });

    it('answers user_not_found for a player the pool does not know, without retrying', async () => {
      const sync = cognitoPictureSync(cognito, userPoolId);
      expect(await sync.setPicture('nobody', 'https://cdn.example/a.webp')).toBe('user_not_found');
      expect(await syncPicture(sync, 'nobody', 'https://cdn.example/a.webp')).toEqual({ outcome: 'user_not_found', attempts: 1 });
    });

    it('fails, after its retries, against a pool that does not exist', async () => {
      const playerId = await player();
      const sync = cognitoPictureSync(cognito, `${REGION}_missing`);
      const result = await syncPicture(sync, playerId, 'https://cdn.example/a.webp', { attempts: 2, baseDelayMs: 1, maxDelayMs: 1, budgetMs: 5_000 });
      expect(result).toMatchObject({ outcome: 'failed', attempts: 2, error: { name: 'ResourceNotFoundException' } });
      expect(await pictureOf(playerId)).toBeUndefined();
    });
  });

  describe('removal and erasure', () => {
    it('clearPicture removes the attribute; a repeat, or a player the pool does not know, is fine', async () => {
      const playerId = await player();
      const sync = cognitoPictureSync(cognito, userPoolId);
      await sync.setPicture(playerId, 'https://cdn.example/a.webp');
      expect(await sync.clearPicture(playerId)).toBe('cleared');
      expect(await pictureOf(playerId)).toBeUndefined();
      expect(await sync.clearPicture(playerId)).toBe('cleared');
      expect(await sync.clearPicture('nobody')).toBe('user_not_found');
    });

    it("DELETE /v1/players/{id}/avatar and DELETE /v1/players/{id} clear the player's picture", async () => {
      const service = profileService(stack, { pictures: cognitoPictureSync(cognito, userPoolId) });
      for (const suffix of ['/avatar', '']) {
        const playerId = await player();
        const uploadId = newUploadId();
        await processingUpload(stack, playerId, uploadId);
        expect((await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()))).status).toBe(200);
        expect(await pictureOf(playerId)).toBe(picture(playerId, uploadId));
        const token = await stack.issuer.mint(playerId);
        const res = await service.app.request(`/v1/players/${playerId}${suffix}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(suffix ? 204 : 202);
        expect(await pictureOf(playerId)).toBeUndefined();
      }
    });
  });

  describe('thumbnailed -> ready', () => {
    it('mirrors the avatar that became current, not a late older upload', async () => {
      const service = profileService(stack, { pictures: cognitoPictureSync(cognito, userPoolId) });
      const playerId = await player();
      const older = newUploadId(5_000);
      const newer = newUploadId();
      await processingUpload(stack, playerId, older);
      await processingUpload(stack, playerId, newer);

      expect((await deliver(service, '/events', thumbnailedEvent(playerId, newer, new Date().toISOString()))).status).toBe(200);
      expect(await pictureOf(playerId)).toBe(picture(playerId, newer));
      expect((await deliver(service, '/events', thumbnailedEvent(playerId, older, new Date().toISOString()))).status).toBe(200);
      expect(await pictureOf(playerId)).toBe(picture(playerId, newer));
      // Cognito heard only of the upload that became current.
      expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'ok' })).toBe(1);
      expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.pictureSyncPending).toBeUndefined();
    });

    it('sets the same picture whatever the number of concurrent duplicates', async () => {
      const service = profileService(stack, { pictures: cognitoPictureSync(cognito, userPoolId) });
      const playerId = await player();
      const uploadId = newUploadId();
      await processingUpload(stack, playerId, uploadId);
      const event = thumbnailedEvent(playerId, uploadId, new Date().toISOString());
      const answers = await Promise.all([1, 2, 3].map(() => deliver(service, '/events', event)));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(await pictureOf(playerId)).toBe(picture(playerId, uploadId));
    });

    it('leaves Cognito alone when no user pool is configured (no picture sync)', async () => {
      const service = profileService(stack);
      const playerId = await player();
      const uploadId = newUploadId();
      await processingUpload(stack, playerId, uploadId);
      expect((await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()))).status).toBe(200);
      expect(await pictureOf(playerId)).toBeUndefined();
    });

    it('does not hold back the ready event for a player unknown to Cognito, nor mark the sync pending', async () => {
      const service = profileService(stack, { pictures: cognitoPictureSync(cognito, userPoolId) });
      const playerId = newPlayerId();
      const uploadId = newUploadId();
      await processingUpload(stack, playerId, uploadId);
      const res = await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date().toISOString()));
      expect(res.status).toBe(200);
      expect(res.headers.get('ce-id')).toBe(`${uploadId}.ready`);
      expect(await metricValue(service, 'avatarpipeline_profile_cognito_sync_total', { outcome: 'user_not_found' })).toBe(1);
      // Nothing to retry: not marked pending.
      const profile = await new ProfileStore(stack.doc, TABLE).get(playerId);
      expect(profile?.avatarUploadId).toBe(uploadId);
      expect(profile?.pictureSyncPending).toBeUndefined();
    });
  });
});
