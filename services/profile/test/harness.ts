/** Real stand-ins for the profile tests: dynalite, s3rver, an HTTP sink for K_SINK, a dev issuer. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createLocalJWKSet } from 'jose';
import { v7 } from 'uuid';
import { vi } from 'vitest';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { toBinary, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { avatarKey, uploadKey } from '@avatar-pipeline/kit/events';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { s3Objects, type ObjectStore } from '@avatar-pipeline/kit/objects';
import type { Service } from '@avatar-pipeline/kit/service';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { metricValue as metricOf } from '@avatar-pipeline/kit/testing';
import { BUCKET, TABLE, createDevIssuer, startTestBackends, type DevIssuer, type S3Server } from '@avatar-pipeline/local';
import type { PictureRetryPolicy, PictureSync } from '../src/cognito.js';
import { createProfileService, profileStores, type ProfileStores } from '../src/index.js';

export { BUCKET, TABLE };
export const MEDIA = 'http://localhost:8080/media';
const ISSUER = 'http://localhost:8080/dev';
const AUDIENCE = 'avatar-pipeline';

export interface SinkRequest {
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP sink that records every POST; `failNext` makes the next N answer 500. */
export async function startSink() {
  const received: SinkRequest[] = [];
  const state = { failNext: 0 };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      if (state.failNext > 0) {
        state.failNext -= 1;
        res.writeHead(500).end();
        return;
      }
      received.push({ headers: req.headers, body });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, received, state, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export type Sink = Awaited<ReturnType<typeof startSink>>;

/** A settable clock, so timestamps move only when a test says so. */
export function testClock(start = Date.parse('2026-03-01T12:00:00.000Z')) {
  const clock = { now: start, fn: () => new Date(clock.now), advance: (ms: number) => (clock.now += ms) };
  return clock;
}

export interface Stack {
  dir: string;
  s3Server: S3Server;
  sink: Sink;
  issuer: DevIssuer;
  doc: DynamoDBDocumentClient;
  /** The bucket on s3rver, as start.ts builds it. */
  objects: ObjectStore;
  uploads: UploadStore;
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const backends = await startTestBackends({ prefix: 'ap-profile-' });
  const sink = await startSink();
  const issuer = await createDevIssuer({ issuer: ISSUER, audience: AUDIENCE, logger: createLogger('issuer', 'silent') });
  return {
    dir: backends.dir,
    s3Server: backends.s3Server,
    sink,
    issuer,
    doc: backends.doc,
    objects: s3Objects(backends.s3, BUCKET),
    uploads: new UploadStore(backends.doc, TABLE),
    async close() {
      await sink.close();
      await backends.close();
    },
  };
}

/** The stack's table through stores on `clock` (for a service or reconciler on a test clock, or to spy on). */
export const storesOf = (stack: Stack, clock?: () => Date) => profileStores(stack.doc, TABLE, clock);

export function profileService(
  stack: Stack,
  options: {
    /** The routes' clock, and the stores' unless `stores` is given. */
    clock?: () => Date;
    /** Default: new stores on the stack's dynalite (on `clock`). */
    stores?: ProfileStores;
    pictures?: PictureSync;
    /** Default: the service's own policy with waits of a few ms, so a failing Cognito costs the test nothing. */
    pictureRetry?: PictureRetryPolicy;
    eventAuth?: TokenPolicy;
    sinkTokenFile?: string;
  } = {},
): Service {
  return createProfileService({
    config: { MEDIA_BASE_URL: MEDIA, K_SINK: stack.sink.url, K_SINK_OIDC_TOKEN_FILE: options.sinkTokenFile },
    stores: options.stores ?? storesOf(stack, options.clock),
    objects: stack.objects,
    pictures: options.pictures,
    pictureRetry: options.pictureRetry ?? FAST_PICTURE_RETRY,
    auth: { issuers: [{ issuer: ISSUER, keys: createLocalJWKSet({ keys: [stack.issuer.publicJwk] }) }], audiences: [AUDIENCE], algorithms: ['ES256'] },
    logger: createLogger('profile', 'silent'),
    eventAuth: options.eventAuth,
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

export const FAST_PICTURE_RETRY: PictureRetryPolicy = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20, budgetMs: 2_000 };

/** A retryable DynamoDB error, as a throttled table answers. */
export const throttled = () => Object.assign(new Error('injected: the table is throttling'), { name: 'ProvisionedThroughputExceededException' });

/**
 * A Cognito picture sync whose `setPicture` answers `updated` unless a test scripts it otherwise
 * (a failing Cognito, which moto cannot be: its real behaviour is in cognito-moto.test.ts).
 */
export function fakePictures() {
  return {
    setPicture: vi.fn<PictureSync['setPicture']>(async () => 'updated'),
    clearPicture: vi.fn<PictureSync['clearPicture']>(async () => 'cleared'),
  } satisfies PictureSync;
}

/** A Cognito error the SDK would throw. */
export const cognitoError = (name: string, message = name) => Object.assign(new Error(message), { name });

/** A new upload id taken `agoMs` before now (UUIDv7 ordering follows). */
export const newUploadId = (agoMs = 0) => v7({ msecs: Date.now() - agoMs });

let playerSeq = 0;
export const newPlayerId = () => `player-${process.pid}-${++playerSeq}`;

/** An upload record in `processing`, as moderate leaves it. */
export async function processingUpload(stack: Stack, playerId: string, uploadId: string): Promise<void> {
  await stack.uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 5_242_880 });
  await stack.uploads.markProcessing(playerId, uploadId);
}

export async function putOriginal(stack: Stack, playerId: string, uploadId: string): Promise<void> {
  await stack.objects.put(uploadKey(playerId, uploadId), Buffer.from('png'), { contentType: 'image/png' });
}

export const objectExists = (stack: Stack, key: string) => stack.objects.exists(key);

/** Renditions as thumbnail writes them (`avatars/<playerId>/<uploadId>/<name>.webp`); returns their keys. */
export async function putRenditions(stack: Stack, playerId: string, uploadId: string): Promise<string[]> {
  const keys = ['64', '128', '256', 'full'].map((name) => avatarKey(playerId, uploadId, name));
  for (const key of keys) await stack.objects.put(key, Buffer.from('webp'), { contentType: 'image/webp' });
  return keys;
}

/** Which of `keys` exist, in order. */
export const existing = (stack: Stack, keys: string[]) => Promise.all(keys.map((key) => objectExists(stack, key)));

export function thumbnailedEvent(playerId: string, uploadId: string, uploadedAt: string): OutgoingEvent {
  const objects = Object.fromEntries(['64', '128', '256', 'full'].map((size) => [size, `avatars/${playerId}/${uploadId}/${size}.webp`]));
  return {
    id: `${uploadId}.thumbnailed`,
    source: '/avatar-pipeline/thumbnail',
    type: 'avatarpipeline.avatar.thumbnailed',
    subject: uploadKey(playerId, uploadId),
    data: { playerId, uploadId, uploadedAt, bucket: BUCKET, objects },
  };
}

/** Delivers an event in binary mode, extensions (e.g. Knative's error attributes) as ce- headers. */
export function deliver(service: Service, path: string, event: OutgoingEvent, extensions: Record<string, string> = {}) {
  const { headers, body } = toBinary(event);
  for (const [name, value] of Object.entries(extensions)) headers[`ce-${name}`] = value;
  return service.app.request(path, { method: 'POST', headers, body });
}

/** Reads a reply or sink request (binary mode) back as attributes plus data. */
export function readEvent(headers: Headers | IncomingHttpHeaders, body: string) {
  const get = (name: string) => (headers instanceof Headers ? headers.get(name) : (headers[name] as string | undefined)) ?? undefined;
  return { id: get('ce-id'), type: get('ce-type'), source: get('ce-source'), subject: get('ce-subject'), data: JSON.parse(body) as Record<string, any> };
}

/** Sum of a metric's series matching `labels` in a service's registry. */
export const metricValue = (service: Service, metric: string, labels: Record<string, string> = {}, series = metric) =>
  metricOf(service.metrics.registry, metric, labels, series);
