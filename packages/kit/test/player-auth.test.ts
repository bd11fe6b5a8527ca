import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { authEnv, playerAuthSettings } from '../src/player-auth-config.js';
import { authFromConfig, bearerAuth, hasRole, requireRole, rolesOf } from '../src/player-auth.js';
import { createService } from '../src/service.js';
import { startTestIssuer, type TestIssuer } from '../src/testing.js';
import { captureLogs } from './helpers.js';

/** The app clients of the pool: the game's (access tokens) and the web page's (ID tokens too). */
const GAME_CLIENT = 'game-client-id';
const WEB_CLIENT = 'web-client-id';

/** bearerAuth from JWT_* variables, as a service's main builds it: real JWKS fetched over HTTP. */
function protectedApp(vars: Record<string, string>) {
  const logs = captureLogs('player-auth-test');
  const service = createService({ name: 'player-auth-test', logger: logs.logger });
  service.app.get('/me', bearerAuth(authFromConfig(loadConfig(authEnv, vars))), (c) => c.json({ playerId: c.get('playerId') }));
  const call = async (token: string) => {
    const res = await service.app.request('/me', { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as { playerId?: string; error?: { code: string; message: string } } };
  };
  return { call, logs };
}

const refused = (message: string) => ({ status: 401, body: { error: { code: 'unauthorized', message } } });
const now = () => Math.floor(Date.now() / 1000);

describe('Cognito-shaped tokens from several issuers', () => {
  let poolA: TestIssuer;
  let poolB: TestIssuer;
  let app: ReturnType<typeof protectedApp>;

  beforeAll(async () => {
    [poolA, poolB] = await Promise.all([startTestIssuer('eu-west-1_PoolA'), startTestIssuer('us-east-1_PoolB')]);
    app = protectedApp({
      JWT_ISSUERS: `${poolA.issuer}, ${poolB.issuer}`,
      JWT_AUDIENCE: WEB_CLIENT,
      JWT_CLIENT_IDS: `${GAME_CLIENT},${WEB_CLIENT}`,
      JWT_ALGORITHMS: 'RS256',
    });
  });
  afterAll(async () => {
    await Promise.all([poolA?.close(), poolB?.close()]);
  });

  it('accepts an ID token for an accepted audience', async () => {
    expect(await app.call(await poolA.idToken(WEB_CLIENT, { sub: 'alice' }))).toEqual({ status: 200, body: { playerId: 'alice' } });
  });

  it('refuses an ID token for another audience, even one whose access tokens are accepted', async () => {
    expect(await app.call(await poolA.idToken(GAME_CLIENT))).toEqual(refused('token claim aud is not accepted'));
    expect(await app.call(await poolA.idToken('someone-else'))).toEqual(refused('token claim aud is not accepted'));
  });

  it('accepts an access token from a listed app client', async () => {
    expect(await app.call(await poolA.accessToken(GAME_CLIENT, { sub: 'bob' }))).toEqual({ status: 200, body: { playerId: 'bob' } });
    expect(await app.call(await poolA.accessToken(WEB_CLIENT, { sub: 'carol' }))).toEqual({ status: 200, body: { playerId: 'carol' } });
  });

  it('refuses an access token from an app client not listed', async () => {
    expect(await app.call(await poolA.accessToken('other-client'))).toEqual(refused('token claim client_id is not accepted'));
  });

  it('refuses an access token carrying an accepted aud instead of a client_id', async () => {
    const token = await poolA.accessToken(GAME_CLIENT, { claims: { client_id: undefined, aud: WEB_CLIENT } });
    expect(await app.call(token)).toEqual(refused('token claim client_id is not accepted'));
  });

  it.each(['refresh', 'ID', 'access ', 42])('refuses token_use %j', async (use) => {
    expect(await app.call(await poolA.idToken(WEB_CLIENT, { claims: { token_use: use } }))).toEqual(refused('token claim token_use is not accepted'));
  });

  it('accepts a generic OIDC ID token (no token_use) by its aud', async () => {
    expect(await app.call(await poolA.sign({ sub: 'dave', aud: [WEB_CLIENT, 'another-api'] }))).toEqual({ status: 200, body: { playerId: 'dave' } });
    expect(await app.call(await poolA.sign({ sub: 'dave', client_id: GAME_CLIENT }))).toEqual(refused('token claim aud is not accepted'));
  });

  it("accepts the second issuer's tokens, verified with its own keys", async () => {
    expect(await app.call(await poolB.idToken(WEB_CLIENT, { sub: 'erin' }))).toEqual({ status: 200, body: { playerId: 'erin' } });
    expect(await app.call(await poolB.accessToken(GAME_CLIENT, { sub: 'frank' }))).toEqual({ status: 200, body: { playerId: 'frank' } });
  });

  it("refuses a token signed with one issuer's key that claims the other issuer", async () => {
    const claims = { iss: poolB.issuer, sub: 'mallory', aud: WEB_CLIENT, token_use: 'id' };
    expect(await app.call(await poolA.sign(claims))).toEqual(refused('token was not signed by a known key'));
    // Under the other pool's kid, too: its keys, not the kid, decide.
    expect(await app.call(await poolA.sign(claims, { kid: poolB.kid }))).toEqual(refused('token signature is invalid'));
  });

  it('refuses a token from an issuer not configured, and logs which', async () => {
    const stranger = await startTestIssuer('eu-west-1_Stranger');
    try {
      expect(await app.call(await stranger.idToken(WEB_CLIENT))).toEqual(refused('token claim iss is not accepted'));
      // An issuer differing by a trailing slash is another issuer.
      expect(await app.call(await poolA.sign({ iss: `${poolA.issuer}/`, sub: 'p', aud: WEB_CLIENT }))).toEqual(refused('token claim iss is not accepted'));
      expect(await app.call(await poolA.sign({ sub: 'p', aud: WEB_CLIENT, iss: undefined }))).toEqual(refused('token claim iss is not accepted'));
      expect(stranger.fetches()).toBe(0);
      const logged = app.logs.entries().filter((e) => e['msg'] === 'token from an issuer not configured');
      expect(logged.map((e) => e['iss'])).toEqual([stranger.issuer, `${poolA.issuer}/`]);
    } finally {
      await stranger.close();
    }
  });

  it('still checks expiry and algorithms on both kinds', async () => {
    expect(await app.call(await poolA.accessToken(GAME_CLIENT, { exp: now() - 60 }))).toEqual(refused('token expired'));
    expect(await app.call(await poolB.idToken(WEB_CLIENT, { exp: now() - 60 }))).toEqual(refused('token expired'));
    expect(await app.call(await poolA.accessToken(GAME_CLIENT, { claims: { exp: undefined } }))).toEqual(refused('token claim exp is not accepted'));
    const hmac = await new SignJWT({ sub: 'p', client_id: GAME_CLIENT, token_use: 'access' })
      .setProtectedHeader({ alg: 'HS256', kid: poolA.kid })
      .setIssuer(poolA.issuer)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('a-shared-secret-of-32-characters'));
    expect(await app.call(hmac)).toEqual(refused('token algorithm is not allowed'));
    const unsigned = (claims: object) => `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    expect(await app.call(unsigned({ iss: poolA.issuer, sub: 'p', client_id: GAME_CLIENT, token_use: 'access', exp: now() + 60 }))).toEqual(
      refused('token algorithm is not allowed'),
    );
    expect(await app.call('not.a.jwt')).toEqual(refused('token is invalid'));
  });

  it('fetched each pool’s JWKS once, at its well-known URL', () => {
    expect([poolA.fetches(), poolB.fetches()]).toEqual([1, 1]);
  });
});

describe('player claims and issuer forms', () => {
  let pool: TestIssuer;
  beforeAll(async () => {
    pool = await startTestIssuer();
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('reads the player id from each kind’s claim: Cognito names the username differently in each', async () => {
    const { call } = protectedApp({
      JWT_ISSUER: pool.issuer,
      JWT_AUDIENCE: WEB_CLIENT,
      JWT_CLIENT_IDS: GAME_CLIENT,
      JWT_PLAYER_CLAIM: 'cognito:username',
      JWT_ACCESS_PLAYER_CLAIM: 'username',
    });
    expect(await call(await pool.idToken(WEB_CLIENT, { sub: 'p1' }))).toEqual({ status: 200, body: { playerId: 'user-p1' } });
    expect(await call(await pool.accessToken(GAME_CLIENT, { sub: 'p1' }))).toEqual({ status: 200, body: { playerId: 'user-p1' } });
    expect(await call(await pool.accessToken(GAME_CLIENT, { claims: { username: undefined } }))).toEqual(refused('token claim username is not accepted'));
  });

  it('uses JWT_PLAYER_CLAIM for both kinds unless told otherwise, and refuses access tokens without JWT_CLIENT_IDS', async () => {
    const { call } = protectedApp({ JWT_ISSUER: pool.issuer, JWT_AUDIENCE: WEB_CLIENT });
    expect(await call(await pool.idToken(WEB_CLIENT, { sub: 'p2' }))).toEqual({ status: 200, body: { playerId: 'p2' } });
    expect(await call(await pool.accessToken(WEB_CLIENT, { sub: 'p2' }))).toEqual(refused('token claim client_id is not accepted'));
  });

  it('takes access tokens only when JWT_AUDIENCE is unset', async () => {
    const { call } = protectedApp({ JWT_ISSUER: pool.issuer, JWT_CLIENT_IDS: GAME_CLIENT });
    expect(await call(await pool.accessToken(GAME_CLIENT, { sub: 'p3' }))).toEqual({ status: 200, body: { playerId: 'p3' } });
    expect(await call(await pool.idToken(GAME_CLIENT))).toEqual(refused('token claim aud is not accepted'));
  });

  it('fetches the keys from JWT_JWKS_URL / JWT_JWKS_URLS when given', async () => {
    const jwksUrl = `${pool.issuer}/.well-known/jwks.json`;
    const elsewhere = 'https://issuer.example/pool';
    const token = await pool.idToken(WEB_CLIENT, { sub: 'p4', claims: { iss: elsewhere } });
    for (const vars of [
      { JWT_ISSUER: elsewhere, JWT_JWKS_URL: jwksUrl },
      { JWT_ISSUERS: `${pool.issuer},${elsewhere}`, JWT_JWKS_URLS: `${jwksUrl},${jwksUrl}` },
    ]) {
      const { call } = protectedApp({ ...vars, JWT_AUDIENCE: WEB_CLIENT });
      expect(await call(token)).toEqual({ status: 200, body: { playerId: 'p4' } });
    }
  });
});

describe('roles', () => {
  let pool: TestIssuer;
  beforeAll(async () => {
    pool = await startTestIssuer();
  });
  afterAll(async () => {
    await pool?.close();
  });

  /** `/me` answers the token's roles; `/moderation` needs the configured moderator role. */
  function rolesApp(vars: Record<string, string>) {
    const config = loadConfig(authEnv, { JWT_ISSUER: pool.issuer, JWT_AUDIENCE: WEB_CLIENT, JWT_CLIENT_IDS: GAME_CLIENT, ...vars });
    const { moderatorRole } = playerAuthSettings(config);
    const service = createService({ name: 'roles-test', logger: captureLogs('roles-test').logger });
    const auth = bearerAuth(authFromConfig(config));
    service.app.get('/me', auth, (c) => c.json({ playerId: c.get('playerId'), roles: c.get('roles'), moderator: hasRole(c, moderatorRole) }));
    service.app.get('/moderation', auth, requireRole(moderatorRole), (c) => c.json({ ok: true }));
    const call = async (path: string, token: string) => {
      const res = await service.app.request(path, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as unknown };
    };
    return call;
  }

  it('reads the roles claim of either kind of token; without it a player has none', async () => {
    const call = rolesApp({});
    const id = await pool.idToken(WEB_CLIENT, { sub: 'mod-1', claims: { roles: ['moderator', 'support'] } });
    expect(await call('/me', id)).toEqual({ status: 200, body: { playerId: 'mod-1', roles: ['moderator', 'support'], moderator: true } });
    const access = await pool.accessToken(GAME_CLIENT, { sub: 'mod-2', claims: { roles: ['moderator'] } });
    expect(await call('/me', access)).toEqual({ status: 200, body: { playerId: 'mod-2', roles: ['moderator'], moderator: true } });
    expect(await call('/me', await pool.idToken(WEB_CLIENT, { sub: 'p1' }))).toEqual({ status: 200, body: { playerId: 'p1', roles: [], moderator: false } });
  });

  it('lets only holders of the role through requireRole: 403 forbidden for the others, 401 without a token', async () => {
    const call = rolesApp({});
    expect(await call('/moderation', await pool.idToken(WEB_CLIENT, { claims: { roles: ['moderator'] } }))).toEqual({ status: 200, body: { ok: true } });
    const forbidden = { status: 403, body: { error: { code: 'forbidden', message: 'this needs the moderator role' } } };
    expect(await call('/moderation', await pool.idToken(WEB_CLIENT))).toEqual(forbidden);
    expect(await call('/moderation', await pool.idToken(WEB_CLIENT, { claims: { roles: ['Moderator', 'moderators'] } }))).toEqual(forbidden);
    // A role elsewhere than the configured claim counts for nothing.
    expect(await call('/moderation', await pool.idToken(WEB_CLIENT, { claims: { groups: ['moderator'] } }))).toEqual(forbidden);
    expect((await call('/moderation', 'not-a-token')).status).toBe(401);
  });

  it.each([['moderator'], [{ 0: 'moderator' }], [42], [null], [{ moderator: true }]])('treats a roles claim that is not an array (%j) as no roles', async (claim) => {
    const call = rolesApp({});
    expect(await call('/me', await pool.idToken(WEB_CLIENT, { sub: 'p1', claims: { roles: claim } }))).toEqual({
      status: 200,
      body: { playerId: 'p1', roles: [], moderator: false },
    });
  });

  it('keeps only the strings of the array, and a bounded number of them', () => {
    expect(rolesOf(['a', 1, null, 'b', ['moderator'], { x: 1 }])).toEqual(['a', 'b']);
    expect(rolesOf(Array.from({ length: 1000 }, (_, i) => `r${i}`))).toHaveLength(100);
  });

  it('takes Cognito groups with JWT_ROLES_CLAIM, and another moderator role with MODERATOR_ROLE', async () => {
    const call = rolesApp({ JWT_ROLES_CLAIM: 'cognito:groups', MODERATOR_ROLE: 'trust-and-safety' });
    const grouped = await pool.idToken(WEB_CLIENT, { sub: 'm', claims: { 'cognito:groups': ['trust-and-safety'], roles: ['moderator'] } });
    expect(await call('/me', grouped)).toEqual({ status: 200, body: { playerId: 'm', roles: ['trust-and-safety'], moderator: true } });
    expect((await call('/moderation', grouped)).status).toBe(200);
    expect((await call('/moderation', await pool.idToken(WEB_CLIENT, { claims: { roles: ['moderator'] } }))).status).toBe(403);
  });

  it('takes an empty JWT_ROLES_CLAIM or MODERATOR_ROLE as unset, like every variable', () => {
    expect(playerAuthSettings(loadConfig(authEnv, { JWT_ISSUER: pool.issuer, JWT_AUDIENCE: 'a', JWT_ROLES_CLAIM: '', MODERATOR_ROLE: '' }))).toMatchObject({
      rolesClaim: 'roles',
      moderatorRole: 'moderator',
    });
  });
});

describe('JWT_* settings', () => {
  const settings = (vars: Record<string, string>) => playerAuthSettings(loadConfig(authEnv, vars));
  const problem = (vars: Record<string, string>) => {
    try {
      settings(vars);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };
  const cognito = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123';

  it('keeps the single-issuer form, and finds Cognito keys at the well-known URL', () => {
    expect(settings({ JWT_ISSUER: 'http://localhost:8080', JWT_JWKS_URL: 'http://10.0.0.1:8080/.well-known/jwks.json', JWT_AUDIENCE: 'avatar-pipeline' })).toEqual({
      issuers: [{ issuer: 'http://localhost:8080', jwksUrl: 'http://10.0.0.1:8080/.well-known/jwks.json' }],
      audiences: ['avatar-pipeline'],
      clientIds: [],
      algorithms: ['RS256', 'ES256'],
      playerClaim: 'sub',
      accessPlayerClaim: 'sub',
      rolesClaim: 'roles',
      moderatorRole: 'moderator',
    });
    expect(settings({ JWT_ISSUERS: `${cognito},https://tenant.example/`, JWT_CLIENT_IDS: 'a,b' })).toMatchObject({
      issuers: [
        { issuer: cognito, jwksUrl: `${cognito}/.well-known/jwks.json` },
        { issuer: 'https://tenant.example/', jwksUrl: 'https://tenant.example/.well-known/jwks.json' },
      ],
      audiences: [],
      clientIds: ['a', 'b'],
    });
  });

  it.each([
    [{ JWT_AUDIENCE: 'a' }, 'invalid configuration: JWT_ISSUER or JWT_ISSUERS is required'],
    [{ JWT_ISSUER: cognito, JWT_ISSUERS: cognito, JWT_AUDIENCE: 'a' }, 'JWT_ISSUER and JWT_ISSUERS exclude each other'],
    [{ JWT_ISSUERS: cognito, JWT_JWKS_URL: `${cognito}/keys`, JWT_AUDIENCE: 'a' }, 'JWT_JWKS_URL belongs to JWT_ISSUER'],
    [{ JWT_ISSUERS: `${cognito},https://b.example`, JWT_JWKS_URLS: `${cognito}/keys`, JWT_AUDIENCE: 'a' }, '(2 issuers, 1 URLs)'],
    [{ JWT_ISSUER: cognito, JWT_JWKS_URLS: `${cognito}/keys`, JWT_AUDIENCE: 'a' }, '(0 issuers, 1 URLs)'],
    [{ JWT_ISSUERS: `${cognito},${cognito}`, JWT_AUDIENCE: 'a' }, 'JWT_ISSUERS lists an issuer twice'],
    [{ JWT_ISSUER: cognito }, 'JWT_AUDIENCE (for ID tokens) or JWT_CLIENT_IDS (for access tokens) is required'],
    [{ JWT_ISSUER: 'my-issuer', JWT_AUDIENCE: 'a' }, 'JWT_ISSUER: an issuer without a JWKS URL must be an http(s) URL'],
  ])('refuses %j', (vars, message) => {
    const text = problem(vars);
    expect(text).toMatch(/^invalid configuration: /);
    expect(text).toContain(message);
  });

  it('names every problem in one line', () => {
    expect(problem({ JWT_JWKS_URL: 'https://keys.example/jwks.json' })).toBe(
      'invalid configuration: JWT_ISSUER or JWT_ISSUERS is required; JWT_JWKS_URL belongs to JWT_ISSUER (with JWT_ISSUERS, use JWT_JWKS_URLS); JWT_AUDIENCE (for ID tokens) or JWT_CLIENT_IDS (for access tokens) is required',
    );
  });

  it('checks every JWKS URL of the list', () => {
    expect(() => loadConfig(authEnv, { JWT_ISSUERS: 'a,b', JWT_JWKS_URLS: 'https://ok.example/jwks,ftp://no' })).toThrow(/JWT_JWKS_URLS.*http\(s\) URL/);
  });
});
