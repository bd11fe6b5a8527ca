import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { authFromConfig, bearerAuth, requireRole } from '@avatar-pipeline/kit/player-auth';
import { authEnv } from '@avatar-pipeline/kit/player-auth-config';
import { createService } from '@avatar-pipeline/kit/service';
import { createDevIssuer } from '../src/index.js';

const ISSUER = 'http://localhost:8080';
const AUDIENCE = 'avatar-pipeline';

async function issuerApp() {
  const issuer = await createDevIssuer({ issuer: ISSUER, audience: AUDIENCE, logger: createLogger('issuer-test', 'silent') });
  const keys = createLocalJWKSet({ keys: [issuer.publicJwk] });
  const post = async (body: unknown) => {
    const res = await issuer.service.app.request('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { token?: string; error?: { code: string; message: string } } };
  };
  const claims = async (token: string | undefined) => (await jwtVerify(token ?? '', keys, { issuer: ISSUER, audience: AUDIENCE })).payload;
  return { issuer, post, claims };
}

describe('dev issuer: POST /dev/token', () => {
  it("mints a player's token without a roles claim", async () => {
    const { post, claims } = await issuerApp();
    const res = await post({ playerId: 'player-1' });
    expect(res.status).toBe(200);
    const payload = await claims(res.body.token);
    expect(payload.sub).toBe('player-1');
    expect(payload).not.toHaveProperty('roles');
    // An empty list is no roles too.
    expect(await claims((await post({ playerId: 'player-1', roles: [] })).body.token)).not.toHaveProperty('roles');
  });

  it("adds the roles claim a moderator's token needs", async () => {
    const { post, claims } = await issuerApp();
    const res = await post({ playerId: 'mod-1', roles: ['moderator', 'support', 'moderator'] });
    expect(res.status).toBe(200);
    expect(await claims(res.body.token)).toMatchObject({ sub: 'mod-1', roles: ['moderator', 'support'] });
  });

  it.each([
    [{ playerId: 'mod-1', roles: 'moderator' }],
    [{ playerId: 'mod-1', roles: ['Moderator'] }],
    [{ playerId: 'mod-1', roles: ['1st'] }],
    [{ playerId: 'mod-1', roles: [''] }],
    [{ playerId: 'mod-1', roles: ['a'.repeat(33)] }],
    [{ playerId: 'mod-1', roles: Array.from({ length: 11 }, (_, i) => `r${i}`) }],
    [{ playerId: 'mod-1', roles: [42] }],
  ])('refuses %j', async (body) => {
    const { post } = await issuerApp();
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.body.error?.code).toBeTruthy();
    expect(res.body.error?.message).toMatch(/roles/);
  });

  it('gives tokens the services read roles from: a moderator passes requireRole, a player gets 403', async () => {
    const { issuer, post } = await issuerApp();
    const service = createService({ name: 'roles-check', logger: createLogger('roles-check', 'silent') });
    const config = loadConfig(authEnv, { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_ALGORITHMS: 'ES256' });
    const auth = authFromConfig(config);
    const keys = createLocalJWKSet({ keys: [issuer.publicJwk] });
    service.app.get('/moderation', bearerAuth({ ...auth, issuers: [{ issuer: ISSUER, keys }] }), requireRole(config.MODERATOR_ROLE), (c) => c.json({ roles: c.get('roles') }));
    const call = async (token: string | undefined) => service.app.request('/moderation', { headers: { authorization: `Bearer ${token}` } });
    const moderator = await call((await post({ playerId: 'mod-1', roles: ['moderator'] })).body.token);
    expect([moderator.status, await moderator.json()]).toEqual([200, { roles: ['moderator'] }]);
    const player = await call((await post({ playerId: 'player-1' })).body.token);
    expect([player.status, await player.json()]).toEqual([403, { error: { code: 'forbidden', message: 'this needs the moderator role' } }]);
    // `mint`, as the stack's helper uses it, gives the same claim.
    expect((await call(await issuer.mint('mod-2', { roles: ['moderator'] }))).status).toBe(200);
  });
});
