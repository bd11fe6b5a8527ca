/** Real backends for presign tests: s3rver behind the POST policy guard, dynalite, and signing keys. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { serve } from '@hono/node-server';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWTPayload } from 'jose';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects } from '@avatar-pipeline/kit/objects';
import type { AuthOptions } from '@avatar-pipeline/kit/player-auth';
import type { Clock } from '@avatar-pipeline/kit/table';
import { BUCKET, TABLE, createPostPolicyGuard, startTestBackends } from '@avatar-pipeline/local';
import { PostSigner, createPresignService, presignStores, type PresignDeps, type PresignSettings } from '../src/index.js';

export { BUCKET, TABLE };
export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'avatar-pipeline';

export interface Backends {
  s3Endpoint: string;
  /** Where browsers POST: the policy guard in front of s3rver. */
  guardUrl: string;
  s3: S3Client;
  doc: DynamoDBDocumentClient;
  close(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const backends = await startTestBackends({ prefix: 'ap-presign-' });
  const guard = createPostPolicyGuard({ upstream: backends.s3Server.endpoint, logger: createLogger('guard', 'silent') });
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: guard.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
  });
  return {
    s3Endpoint: backends.s3Server.endpoint,
    guardUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    s3: backends.s3,
    doc: backends.doc,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await backends.close();
    },
  };
}

export interface Keys {
  auth: AuthOptions;
  /** A token for `playerId`; `claims` override the defaults (iss, aud, exp). */
  token(playerId: string, claims?: JWTPayload): Promise<string>;
}

export async function createKeys(): Promise<Keys> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test', alg: 'ES256' };
  return {
    auth: { issuers: [{ issuer: ISSUER, keys: createLocalJWKSet({ keys: [jwk] }) }], audiences: [AUDIENCE], algorithms: ['ES256'] },
    token: (playerId, claims = {}) =>
      new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: playerId, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'test' })
        .setIssuedAt()
        .sign(privateKey),
  };
}

export function settings(overrides: Partial<PresignSettings> = {}): PresignSettings {
  return {
    maxBytes: 5 * 1024 * 1024,
    expiresSeconds: 300,
    rateLimit: { uploads: 1000, windowSeconds: 60 },
    ...overrides,
  };
}

/** Presign on the real backends; `clock` is its stores' (the rate limit windows, the records' times). */
export function presign(backends: Backends, keys: Keys, overrides: Omit<Partial<PresignDeps>, 'settings'> & { settings?: Partial<PresignSettings>; clock?: Clock } = {}) {
  const { settings: custom, clock, ...rest } = overrides;
  return createPresignService({
    logger: createLogger('presign', 'silent'),
    stores: presignStores(backends.doc, TABLE, clock),
    signer: new PostSigner(backends.s3),
    objects: s3Objects(backends.s3, BUCKET),
    auth: keys.auth,
    ...rest,
    settings: settings({ publicUrl: backends.guardUrl, ...custom }),
  });
}

/** POST /v1/uploads with a JSON body (or a raw string) and an optional bearer token. */
export function requestUpload(app: { request(path: string, init: RequestInit): Response | Promise<Response> }, token: string | undefined, body: unknown, contentType = 'application/json') {
  return app.request('/v1/uploads', {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The form a browser builds from a ticket: the returned fields, then the file last. */
export function uploadForm(fields: Record<string, string>, file: Uint8Array, type: string, overrides: Record<string, string> = {}): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries({ ...fields, ...overrides })) form.append(name, value);
  form.append('file', new Blob([file], { type }), 'avatar');
  return form;
}
