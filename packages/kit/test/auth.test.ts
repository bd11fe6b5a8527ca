import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteJwks } from '../src/auth.js';
import { bearerAuth, type AuthOptions } from '../src/player-auth.js';
import { createService } from '../src/service.js';
import { captureLogs } from './helpers.js';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'avatar-pipeline';

interface SigningKey {
  alg: 'ES256' | 'RS256';
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(alg: 'ES256' | 'RS256', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

interface MintOptions {
  claims?: Record<string, unknown>;
  issuer?: string;
  audience?: string;
  subject?: string;
  /** Seconds since the epoch; null leaves exp out. */
  exp?: number | null;
  nbf?: number;
  kid?: string;
}

function mint(key: SigningKey, options: MintOptions = {}): Promise<string> {
  const jwt = new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: 'JWT' })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setSubject(options.subject ?? 'player-1')
    .setIssuedAt();
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now() + 300);
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(key.privateKey);
}

function protectedApp(keys: JWTVerifyGetKey, overrides: Partial<AuthOptions> = {}) {
  const logs = captureLogs('auth-test');
  const service = createService({ name: 'auth-test', logger: logs.logger });
  service.app.get('/me', bearerAuth({ issuers: [{ issuer: ISSUER, keys }], audiences: [AUDIENCE], algorithms: ['ES256', 'RS256'], ...overrides }), (c) =>
    c.json({ playerId: c.get('playerId') }),
  );
  const call = (authorization?: string) => service.app.request('/me', authorization ? { headers: { authorization } } : {});
  return { service, logs, call };
}

async function expectUnauthorized(res: Response, description?: RegExp) {
  expect(res.status).toBe(401);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('unauthorized');
  const challenge = res.headers.get('www-authenticate');
  expect(challenge).toMatch(/^Bearer\b/);
  if (description) {
    expect(body.error.message).toMatch(description);
    expect(challenge).toMatch(/error="invalid_token"/);
  }
  return body;
}

describe('bearerAuth', () => {
  let es: SigningKey;
  let rs: SigningKey;
  let stranger: SigningKey;
  let app: ReturnType<typeof protectedApp>;
  const tokens: string[] = [];
  const remember = async (token: Promise<string> | string) => {
    const t = await token;
    tokens.push(t);
    return t;
  };

  beforeAll(async () => {
    [es, rs, stranger] = await Promise.all([signingKey('ES256', 'es-1'), signingKey('RS256', 'rs-1'), signingKey('ES256', 'other')]);
    app = protectedApp(createLocalJWKSet({ keys: [es.jwk, rs.jwk] }));
  });

  afterAll(() => {
    // Whatever happened above, no token (nor its signature alone) reached the logs.
    const logged = app.logs.text();
    expect(logged.length).toBeGreaterThan(0);
    for (const token of tokens) {
      expect(logged).not.toContain(token);
      const signature = token.split('.')[2];
      if (signature) expect(logged).not.toContain(signature);
    }
  });

  it('accepts a valid ES256 token and sets playerId from sub', async () => {
    const res = await app.call(`Bearer ${await remember(mint(es, { subject: 'p.es-256_x' }))}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ playerId: 'p.es-256_x' });
  });

  it('accepts a valid RS256 token, with a case-insensitive scheme', async () => {
    const res = await app.call(`bearer ${await remember(mint(rs, { subject: 'rs-player' }))}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ playerId: 'rs-player' });
  });

  it('tolerates a few seconds of clock skew', async () => {
    const res = await app.call(`Bearer ${await remember(mint(es, { exp: now() - 2 }))}`);
    expect(res.status).toBe(200);
  });

  it('reads the player id from a configured claim', async () => {
    const custom = protectedApp(createLocalJWKSet({ keys: [es.jwk] }), { playerClaim: 'player_id' });
    const res = await custom.call(`Bearer ${await remember(mint(es, { subject: 'someone-else', claims: { player_id: 'custom-7' } }))}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ playerId: 'custom-7' });
    await expectUnauthorized(await custom.call(`Bearer ${await remember(mint(es))}`), /player_id/);
  });

  it('asks for a token when the header is missing', async () => {
    const res = await app.call();
    await expectUnauthorized(res);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });

  it.each(['Basic dXNlcjpwYXNz', 'Token abc', 'Bearer', 'Bearer ', 'Bearer a b', 'Bearer "quoted"'])('rejects the header %j', async (header) => {
    await expectUnauthorized(await app.call(header));
  });

  const payload = b64({ sub: 'player-1', iss: ISSUER, aud: AUDIENCE, exp: now() + 300 });
  it.each([
    'garbage',
    'a.b.c',
    'a.b',
    'a.b.c.d.e',
    'e30.e30.',
    `${b64('x')}.${b64({})}.sig`,
    `${b64({ alg: 'ES256' })}.not-json.c2ln`,
    `${b64({ alg: 5 })}.${payload}.c2ln`,
    `${b64({ alg: 'ES256', kid: {} })}.${payload}.c2ln`,
    `${b64({ alg: 'ES256', kid: 'es-1', crit: ['exp'] })}.${payload}.c2ln`,
    `${b64({ alg: 'ES256', kid: 'es-1', b64: false, crit: ['b64'] })}.${payload}.c2ln`,
    `${b64({ alg: 'ES256', kid: 'es-1' })}.${payload}.${'A'.repeat(86)}`,
    `${b64({ alg: 'RS256', kid: 'es-1' })}.${payload}.c2ln`,
    `${b64({ alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } })}.${payload}.c2ln`,
  ])('rejects the garbage token %j', async (token) => {
    await expectUnauthorized(await app.call(`Bearer ${token}`), /invalid|known key|claim iss/);
  });

  it('rejects an expired token', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(es, { exp: now() - 60 }))}`), /expired/);
  });

  it('rejects a token that is not valid yet (nbf)', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(es, { nbf: now() + 120 }))}`), /nbf/);
  });

  it('rejects a token for another audience', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(es, { audience: 'someone-else' }))}`), /aud/);
  });

  it('rejects a token from another issuer', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(rs, { issuer: 'https://evil.test' }))}`), /iss/);
  });

  it('rejects a token without exp', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(es, { exp: null }))}`), /exp/);
  });

  it('rejects an unsecured token (alg: none)', async () => {
    const unsecured = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'player-1', iss: ISSUER, aud: AUDIENCE, exp: now() + 300 })}.`;
    await expectUnauthorized(await app.call(`Bearer ${await remember(unsecured)}`), /algorithm/);
  });

  it('rejects an HS256 token keyed with the public key (algorithm confusion), even if HS256 were allowed', async () => {
    const secret = new TextEncoder().encode(await exportSPKI(rs.publicKey));
    const forged = await remember(
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', kid: rs.kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('player-1')
        .setExpirationTime(now() + 300)
        .sign(secret),
    );
    await expectUnauthorized(await app.call(`Bearer ${forged}`), /algorithm/);
    const lax = protectedApp(createLocalJWKSet({ keys: [es.jwk, rs.jwk] }), { algorithms: ['RS256', 'ES256', 'HS256'] });
    await expectUnauthorized(await lax.call(`Bearer ${forged}`));
  });

  it('rejects a token signed by an unknown key', async () => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(stranger))}`), /known key/);
    // Same kid as a trusted key, wrong private key.
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(stranger, { kid: es.kid }))}`), /signature/);
  });

  it('rejects a token whose payload was altered', async () => {
    const [header, , signature] = (await remember(mint(es))).split('.');
    const tampered = `${header}.${b64({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now() + 300 })}.${signature}`;
    await expectUnauthorized(await app.call(`Bearer ${tampered}`), /signature/);
  });

  it.each([['../x'], ['a/b'], ['x'.repeat(200)], ['.hidden'], [''], ['a b'], ['ü']])('rejects the player id %j', async (sub) => {
    await expectUnauthorized(await app.call(`Bearer ${await remember(mint(es, { subject: sub }))}`), /player id/);
  });

  it('rejects a player id claim that is not a string', async () => {
    const custom = protectedApp(createLocalJWKSet({ keys: [es.jwk] }), { playerClaim: 'pid' });
    await expectUnauthorized(await custom.call(`Bearer ${await remember(mint(es, { claims: { pid: 42 } }))}`), /pid/);
  });

  it('does not echo the token in the response', async () => {
    const token = await remember(mint(es, { exp: now() - 60 }));
    const res = await app.call(`Bearer ${token}`);
    const text = await res.text();
    expect(text).not.toContain(token.split('.')[2]);
    expect(res.headers.get('www-authenticate')).not.toContain(token.split('.')[2]);
  });
});

describe('remoteJwks', () => {
  let key: SigningKey;
  let server: Server;
  let url: string;
  let hits = 0;
  let answer: () => { status: number; body: string } = () => ({ status: 200, body: JSON.stringify({ keys: [key.jwk] }) });

  beforeAll(async () => {
    key = await signingKey('ES256', 'remote-1');
    server = createServer((req, res) => {
      hits += 1;
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
      const { status, body } = answer();
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('verifies tokens against keys fetched over HTTP, fetching them once', async () => {
    const { call } = protectedApp(remoteJwks(url));
    hits = 0;
    for (const subject of ['r-1', 'r-2', 'r-3']) {
      const res = await call(`Bearer ${await mint(key, { subject })}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ playerId: subject });
    }
    expect(hits).toBe(1);
    const stranger = await signingKey('ES256', 'remote-unknown');
    await expectUnauthorized(await call(`Bearer ${await mint(stranger)}`), /known key/);
  });

  it('answers 503, not 401, when the keys cannot be fetched', async () => {
    const token = await mint(key);
    for (const broken of [
      () => ({ status: 500, body: 'oops' }),
      () => ({ status: 200, body: 'not json' }),
      () => ({ status: 200, body: JSON.stringify({ nope: true }) }),
    ]) {
      answer = broken;
      const { call, logs } = protectedApp(remoteJwks(url));
      const res = await call(`Bearer ${token}`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(await res.json()).toMatchObject({ error: { code: 'auth_unavailable' } });
      expect(logs.entries().some((e) => e['msg'] === 'signing keys unavailable')).toBe(true);
      expect(logs.text()).not.toContain(token.split('.')[2]);
    }
    answer = () => ({ status: 200, body: JSON.stringify({ keys: [key.jwk] }) });
  });

  it('answers 503 when the key server is down', async () => {
    const down = createServer();
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const port = (down.address() as AddressInfo).port;
    await new Promise<void>((resolve) => down.close(() => resolve()));
    const { call } = protectedApp(remoteJwks(`http://127.0.0.1:${port}/.well-known/jwks.json`));
    const res = await call(`Bearer ${await mint(key)}`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'auth_unavailable' } });
  });
});
