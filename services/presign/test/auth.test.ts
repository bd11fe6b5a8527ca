import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { authEnv } from '@avatar-pipeline/kit/player-auth-config';
import type { Service } from '@avatar-pipeline/kit/service';
import { startTestIssuer, type TestIssuer } from '@avatar-pipeline/kit/testing';
import { AUDIENCE, ISSUER, createKeys, presign, requestUpload, startBackends, type Backends, type Keys } from './support.js';

const body = { contentType: 'image/jpeg', contentLength: 1000 };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('POST /v1/uploads authentication', () => {
  let backends: Backends;
  let keys: Keys;
  let service: Service;

  beforeAll(async () => {
    backends = await startBackends();
    keys = await createKeys();
    service = presign(backends, keys);
  });
  afterAll(async () => {
    await backends?.close();
  });

  async function expectUnauthorized(token: string | undefined, message?: string) {
    const res = await requestUpload(service.app, token, body);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const payload = (await res.json()) as { error: { code: string; message: string } };
    expect(payload.error.code).toBe('unauthorized');
    if (message) expect(payload.error.message).toBe(message);
  }

  it('accepts a valid token', async () => {
    expect((await requestUpload(service.app, await keys.token('player-1'), body)).status).toBe(201);
  });

  it('refuses a request without a token, before looking at the body', async () => {
    await expectUnauthorized(undefined, 'a bearer token is required');
    const res = await requestUpload(service.app, undefined, 'not json');
    expect(res.status).toBe(401);
  });

  it('refuses an expired token', async () => {
    await expectUnauthorized(await keys.token('player-1', { exp: Math.floor(Date.now() / 1000) - 3600 }), 'token expired');
  });

  it('refuses a token for another audience', async () => {
    await expectUnauthorized(await keys.token('player-1', { aud: 'some-other-api' }), 'token claim aud is not accepted');
  });

  it('refuses a token from another issuer', async () => {
    await expectUnauthorized(await keys.token('player-1', { iss: 'https://evil.test' }), 'token claim iss is not accepted');
  });

  it('refuses an unsigned (alg: none) token', async () => {
    const payload = { iss: ISSUER, aud: AUDIENCE, sub: 'player-1', exp: Math.floor(Date.now() / 1000) + 600 };
    await expectUnauthorized(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`);
  });

  it('refuses tokens signed with another key or an HMAC secret', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'player-1', exp: Math.floor(Date.now() / 1000) + 600 };
    await expectUnauthorized(await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'test' }).sign(privateKey), 'token signature is invalid');
    const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'test' }).sign(new TextEncoder().encode('a-shared-secret-of-32-characters'));
    await expectUnauthorized(hmac, 'token algorithm is not allowed');
  });

  it('refuses a player id that is not safe in an object key', async () => {
    await expectUnauthorized(await keys.token('../player-2'), 'claim sub is not a usable player id');
  });
});

describe('POST /v1/uploads with Cognito tokens (JWT_* as in a deployment)', () => {
  let backends: Backends;
  let pool: TestIssuer;
  let service: Service;

  beforeAll(async () => {
    [backends, pool] = await Promise.all([startBackends(), startTestIssuer('eu-west-1_Players')]);
    const config = loadConfig(authEnv, { JWT_ISSUERS: pool.issuer, JWT_CLIENT_IDS: 'game-client', JWT_ALGORITHMS: 'RS256' });
    service = presign(backends, await createKeys(), { auth: authFromConfig(config) });
  });
  afterAll(async () => {
    await Promise.all([backends?.close(), pool?.close()]);
  });

  it("issues a ticket for an access token from the game's app client, to the player the token names", async () => {
    const res = await requestUpload(service.app, await pool.accessToken('game-client', { sub: 'cognito-player-1' }), body);
    expect(res.status).toBe(201);
    const ticket = (await res.json()) as { fields: Record<string, string> };
    expect(ticket.fields['key']).toMatch(/^uploads\/cognito-player-1\//);
  });

  it('refuses an access token from another app client, and ID tokens (no JWT_AUDIENCE)', async () => {
    for (const [token, message] of [
      [await pool.accessToken('other-client'), 'token claim client_id is not accepted'],
      [await pool.idToken('game-client'), 'token claim aud is not accepted'],
    ] as const) {
      const res = await requestUpload(service.app, token, body);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code: 'unauthorized', message } });
    }
  });
});
