import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type GenerateKeyPairResult } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventAuthFromConfig, remoteJwks, type TokenPolicy } from '../src/auth.js';
import { eventEndpoint, on } from '../src/cloudevents.js';
import { ConfigError, eventAuthEnv, loadConfig } from '../src/config.js';
import { createService } from '../src/service.js';
import { eventAudience } from '../src/topology.js';
import { deliverEvent, eventTokens, TEST_EVENTS_ISSUER, type EventTokens } from '../src/testing.js';
import { captureLogs } from './helpers.js';

const AUDIENCE = eventAudience('avatar-pipeline', 'moderate');
const PING = 'test.ping';
const ping = { id: 'e1', source: '/test', type: PING, data: { n: 1 } };

function eventApp(eventAuth: TokenPolicy | undefined) {
  const logs = captureLogs('events-test');
  const service = createService({ name: 'events-test', logger: logs.logger, eventAuth });
  const handled: unknown[] = [];
  service.app.post(
    '/events',
    eventEndpoint(service, [
      on(PING, z.object({ n: z.number() }), async (event) => {
        handled.push(event.data);
        return undefined;
      }),
    ]),
  );
  return { app: service.app, handled, logs };
}

describe('event endpoints with OIDC delivery tokens (Knative authentication-oidc)', () => {
  let tokens: EventTokens;
  let forged: Record<string, Record<string, string>>;

  beforeAll(async () => {
    tokens = await eventTokens(AUDIENCE);
    forged = await tokens.forged();
  });

  it('names Knative Services as Knative names addressables: <group>/<kind>/<namespace>/<name>', () => {
    expect(eventAudience('avatar-pipeline', 'profile')).toBe('serving.knative.dev/service/avatar-pipeline/profile');
  });

  it.each(['no token', 'another scheme', 'a token for another audience', 'a token from another issuer', 'an expired token', 'a token signed by another key', 'an unsigned token'])(
    'refuses an event with %s: 401 JSON, and never handles it',
    async (problem) => {
      const { app, handled, logs } = eventApp(tokens.policy);
      const res = await deliverEvent(app, ping, '/events', forged[problem]);
      expect(res.status).toBe(401);
      expect(res.error?.code).toBe('unauthorized');
      expect(handled).toEqual([]);
      expect(logs.entries().some((l) => l['msg'] === 'event refused: no valid delivery token')).toBe(true);
    },
  );

  it('handles an event whose token Knative signed for this service', async () => {
    const { app, handled } = eventApp(tokens.policy);
    const res = await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(202);
    expect(handled).toEqual([{ n: 1 }]);
  });

  it('takes a token for any of its audiences, and only those', async () => {
    const other = eventAudience('avatar-pipeline', 'push');
    const { app } = eventApp({ ...tokens.policy, audience: [AUDIENCE, other] });
    expect((await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await tokens.sign(other)}` })).status).toBe(202);
    expect((await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await tokens.sign('serving.knative.dev/service/x/y')}` })).status).toBe(401);
  });

  it('answers 503 (the broker retries) when the signing keys cannot be fetched', async () => {
    const { app } = eventApp({ ...tokens.policy, keys: remoteJwks('http://127.0.0.1:9/jwks') });
    const res = await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await tokens.sign()}` });
    expect(res.status).toBe(503);
    expect(res.error?.code).toBe('auth_unavailable');
  });

  it('takes any event when no policy is configured', async () => {
    const { app, handled } = eventApp(undefined);
    expect((await deliverEvent(app, ping)).status).toBe(202);
    expect(handled).toHaveLength(1);
  });
});

describe('eventAuthFromConfig', () => {
  const full = {
    EVENTS_OIDC_ISSUER: TEST_EVENTS_ISSUER,
    EVENTS_OIDC_AUDIENCES: `${AUDIENCE}, serving.knative.dev/service/avatar-pipeline/next`,
    EVENTS_OIDC_JWKS_URL: 'https://kubernetes.default.svc/openid/v1/jwks',
  };

  it('is off when EVENTS_OIDC_* are unset, and says so once as a warning', () => {
    const logs = captureLogs();
    expect(eventAuthFromConfig(loadConfig(eventAuthEnv, {}), logs.logger)).toBeUndefined();
    const warnings = logs.entries().filter((l) => l['level'] === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.['msg']).toMatch(/EVENTS_OIDC_\* not set: event endpoints take deliveries without a token/);
  });

  it('verifies issuer, every audience and the allowed algorithms when all are set', () => {
    const logs = captureLogs();
    const policy = eventAuthFromConfig(loadConfig(eventAuthEnv, { ...full, EVENTS_OIDC_ALGORITHMS: 'RS256' }), logs.logger);
    expect(policy).toMatchObject({ issuer: TEST_EVENTS_ISSUER, audience: [AUDIENCE, 'serving.knative.dev/service/avatar-pipeline/next'], algorithms: ['RS256'] });
    expect(logs.entries().filter((l) => l['level'] === 'warn')).toEqual([]);
    expect(loadConfig(eventAuthEnv, full).EVENTS_OIDC_ALGORITHMS).toEqual(['RS256', 'ES256']);
  });

  it('refuses to start half configured, naming what is missing', () => {
    const { logger } = captureLogs();
    const { EVENTS_OIDC_JWKS_URL: _url, ...noJwks } = full;
    expect(() => eventAuthFromConfig(loadConfig(eventAuthEnv, noJwks), logger)).toThrow(ConfigError);
    expect(() => eventAuthFromConfig(loadConfig(eventAuthEnv, noJwks), logger)).toThrow('invalid configuration: EVENTS_OIDC_JWKS_URL is required with the other EVENTS_OIDC_* variables');
    expect(() => eventAuthFromConfig(loadConfig(eventAuthEnv, { EVENTS_OIDC_ISSUER: TEST_EVENTS_ISSUER }), logger)).toThrow(
      'EVENTS_OIDC_AUDIENCES, EVENTS_OIDC_JWKS_URL are required',
    );
    expect(() => loadConfig(eventAuthEnv, { ...full, EVENTS_OIDC_JWKS_URL: 'kubernetes.default.svc' })).toThrow(/EVENTS_OIDC_JWKS_URL/);
  });
});

describe('remoteJwks with a token file (the Kubernetes API serves its JWKS to service accounts)', () => {
  let dir: string;
  let server: Server;
  let url: string;
  const seen: (string | undefined)[] = [];
  let key: GenerateKeyPairResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ap-jwks-'));
    key = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      if (req.headers.authorization !== 'Bearer service-account-token') return void res.writeHead(401).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const token = () => new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(TEST_EVENTS_ISSUER).setAudience(AUDIENCE).setExpirationTime('1h').sign(key.privateKey);

  it('sends the file as a bearer token when it fetches the keys', async () => {
    const file = join(dir, 'token');
    await writeFile(file, 'service-account-token\n');
    const { app } = eventApp({ keys: remoteJwks(url, { tokenFile: file }), issuer: TEST_EVENTS_ISSUER, audience: [AUDIENCE], algorithms: ['RS256'] });
    expect((await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await token()}` })).status).toBe(202);
    expect(seen.at(-1)).toBe('Bearer service-account-token');
  });

  it('cannot verify without the file: 503, so the broker retries', async () => {
    const { app } = eventApp({ keys: remoteJwks(url, { tokenFile: join(dir, 'missing') }), issuer: TEST_EVENTS_ISSUER, audience: [AUDIENCE], algorithms: ['RS256'] });
    expect((await deliverEvent(app, ping, '/events', { authorization: `Bearer ${await token()}` })).status).toBe(503);
  });
});
