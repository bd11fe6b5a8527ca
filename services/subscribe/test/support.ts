/** Real backends for subscribe tests: dynalite, a signing key for player tokens, VAPID keys. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { parsePushAllowedHosts, type PushEndpointPolicy } from '@avatar-pipeline/webpush';
import { TABLE, startTestBackends, type DynamoServer } from '@avatar-pipeline/local';
import { generateVapidKeys, type VapidKeys } from '@avatar-pipeline/webpush';
import { createSubscribeService, subscribeStores, type SubscribeDeps, type SubscribeSettings } from '../src/index.js';

export { TABLE };
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'avatar-pipeline';

export interface Backends {
  dynamo: DynamoServer;
  doc: DynamoDBDocumentClient;
  auth: AuthOptions;
  vapid: VapidKeys;
  token(playerId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const { dynamoServer: dynamo, doc, close } = await startTestBackends({ prefix: 'ap-subscribe-', s3: false });
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test', alg: 'ES256' };
  return {
    dynamo,
    doc,
    auth: { issuers: [{ issuer: ISSUER, keys: createLocalJWKSet({ keys: [jwk] }) }], audiences: [AUDIENCE], algorithms: ['ES256'] },
    vapid: generateVapidKeys(),
    token: (playerId) =>
      new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: playerId, exp: Math.floor(Date.now() / 1000) + 600 })
        .setProtectedHeader({ alg: 'ES256', kid: 'test' })
        .sign(privateKey),
    close,
  };
}

/** The production default: https to the four browser push services only. */
export const defaultPolicy: PushEndpointPolicy = { allowedHosts: parsePushAllowedHosts(undefined), allowHttp: false };

/** What the local stack sets for web-push-testing: its http endpoint only. */
export const emulatorPolicy = (host: string): PushEndpointPolicy => ({ allowedHosts: parsePushAllowedHosts(host), allowHttp: true });

export function subscribeService(backends: Backends, settings: Partial<SubscribeSettings> = {}, deps: Partial<SubscribeDeps> = {}) {
  return createSubscribeService({
    logger: createLogger('subscribe', 'silent'),
    stores: subscribeStores(backends.doc, TABLE),
    auth: backends.auth,
    vapidPublicKey: backends.vapid.publicKey,
    ...deps,
    settings: { policy: defaultPolicy, maxDevices: 10, rateLimit: { subscriptions: 1000, windowSeconds: 60 }, ...settings },
  });
}

type App = { request(path: string, init?: RequestInit): Response | Promise<Response> };

export function call(app: App, method: 'POST' | 'DELETE', token: string | undefined, body: unknown, contentType = 'application/json') {
  return app.request('/v1/push/subscriptions', {
    method,
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

let seq = 0;
/** A fresh player id per test: tests share one table. */
export const nextPlayer = () => `player-${process.pid}-${++seq}`;
