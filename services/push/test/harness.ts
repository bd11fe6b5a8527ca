/** Real stand-ins for the push tests: dynalite, a VAPID key file, a scriptable push server, devices. */
import { createECDH, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { v7 } from 'uuid';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { toBinary, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { Service } from '@avatar-pipeline/kit/service';
import { EventType } from '@avatar-pipeline/kit/topology';
import { SubscriptionStore, parsePushAllowedHosts, type AddressResolver } from '@avatar-pipeline/webpush';
import { metricValue as metricOf } from '@avatar-pipeline/kit/testing';
import { TABLE, startTestBackends, type DynamoServer } from '@avatar-pipeline/local';
import { FileVapidStore, generateVapidKeys, type VapidKeys } from '@avatar-pipeline/webpush';
import { attemptTimeoutMs, claimLeaseMs, createPushAgent, createPushService, pushStores, type PushServiceConfig, type PushStores } from '../src/index.js';

export { TABLE };
export const SUBJECT = 'mailto:ops@example.com';
export const MEDIA = 'https://media.example.com';

export interface Stack {
  dir: string;
  ddb: DynamoServer;
  doc: DynamoDBDocumentClient;
  keys: VapidKeys;
  vapidStore: FileVapidStore;
  subscriptions: SubscriptionStore;
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const { dir, dynamoServer: ddb, doc, close } = await startTestBackends({ prefix: 'ap-push-', s3: false });
  const vapidStore = new FileVapidStore(join(dir, 'vapid.json'));
  const { keys } = await vapidStore.createIfAbsent(generateVapidKeys());
  return {
    dir,
    ddb,
    doc,
    keys,
    vapidStore,
    subscriptions: new SubscriptionStore(doc, TABLE),
    close,
  };
}

/** A settable clock, so timestamps move only when a test says so. */
export function testClock(start = Date.parse('2026-03-01T12:00:00.000Z')) {
  const clock = { now: start, fn: () => new Date(clock.now), advance: (ms: number) => (clock.now += ms) };
  return clock;
}

export interface PushOptions {
  /** Allowlist (PUSH_ALLOWED_HOSTS syntax); http and loopback are allowed unless `allowHttp` is false. */
  allowedHosts: string;
  allowHttp?: boolean;
  config?: Partial<PushServiceConfig>;
  clock?: () => Date;
  resolve?: AddressResolver;
  vapidStore?: FileVapidStore;
  eventAuth?: TokenPolicy;
  /** Called with push's stores before it starts: a test replaces a method to inject a fault. */
  injectFaults?: (stores: PushStores) => void;
}

export interface PushUnderTest {
  service: Service;
  /** Waits requested by the sender (backoff, Retry-After), recorded instead of slept. */
  sleeps: number[];
  close(): Promise<void>;
}

export async function pushService(stack: Stack, options: PushOptions): Promise<PushUnderTest> {
  const config: PushServiceConfig = {
    VAPID_SUBJECT: SUBJECT,
    PUSH_TTL_SECONDS: 86_400,
    PUSH_ALLOWED_HOSTS: parsePushAllowedHosts(options.allowedHosts),
    PUSH_ALLOW_HTTP: options.allowHttp ?? true,
    PUSH_HOST_CONCURRENCY: 16,
    PUSH_MAX_ATTEMPTS: 3,
    PUSH_TIMEOUT_MS: 20_000,
    ...options.config,
  };
  const dispatcher = createPushAgent({
    allowHttp: config.PUSH_ALLOW_HTTP,
    connections: config.PUSH_HOST_CONCURRENCY,
    attemptTimeoutMs: attemptTimeoutMs(config),
    ...(options.resolve ? { resolve: options.resolve } : {}),
  });
  const stores = pushStores(stack.doc, TABLE, claimLeaseMs(config.PUSH_TIMEOUT_MS), options.clock);
  options.injectFaults?.(stores);
  const sleeps: number[] = [];
  const service = await createPushService({
    config,
    stores,
    vapidStore: options.vapidStore ?? stack.vapidStore,
    dispatcher,
    logger: createLogger('push', 'silent'),
    sleep: async (ms) => void sleeps.push(ms),
    eventAuth: options.eventAuth,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return { service, sleeps, close: () => dispatcher.close() };
}

export interface RecordedPush {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ScriptedAnswer {
  /** 0: hold the request and never answer. */
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * A push service that answers each path from a script (default 201) and records every request.
 * Its endpoints are http://127.0.0.1:<port>/push/<name>.
 */
export async function startFakePushService() {
  const received: RecordedPush[] = [];
  const scripts = new Map<string, ScriptedAnswer[]>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks) });
      const answer = scripts.get(path)?.shift() ?? { status: 201 };
      if (answer.status === 0) return; // never answers
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers }).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    host: `127.0.0.1:${port}`,
    endpoint: (name: string) => `http://127.0.0.1:${port}/push/${name}`,
    /** Answers for the next requests to an endpoint, in order; then 201 again. */
    script: (name: string, ...answers: ScriptedAnswer[]) => scripts.set(`/push/${name}`, answers),
    received,
    to: (name: string) => received.filter((r) => r.path === `/push/${name}`),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type FakePushService = Awaited<ReturnType<typeof startFakePushService>>;

/** Browser-like subscription keys (a P-256 point and a 16-byte auth secret). */
export function deviceKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
}

let playerSeq = 0;
export const newPlayerId = () => `player-${process.pid}-${++playerSeq}`;
export const newUploadId = () => v7();

const uploadedAt = '2026-03-01T11:59:50.000Z';

export function readyEvent(playerId: string, uploadId: string): OutgoingEvent {
  const base = `${MEDIA}/avatars/${playerId}/${uploadId}`;
  return {
    id: `${uploadId}.ready`,
    source: '/avatar-pipeline/profile',
    type: EventType.ready,
    subject: uploadKey(playerId, uploadId),
    data: {
      playerId,
      uploadId,
      uploadedAt,
      avatar: { thumbnails: { '64': `${base}/64.webp`, '128': `${base}/128.webp`, '256': `${base}/256.webp` }, full: `${base}/full.webp` },
    },
  };
}

export function rejectedEvent(playerId: string, uploadId: string, message = 'the image was refused by content moderation: Explicit (97.1%)'): OutgoingEvent {
  return {
    id: `${uploadId}.rejected`,
    source: '/avatar-pipeline/moderate',
    type: EventType.rejected,
    subject: uploadKey(playerId, uploadId),
    data: { playerId, uploadId, uploadedAt, reason: { code: 'moderation', message } },
  };
}

export function reviewRequestedEvent(playerId: string, uploadId: string): OutgoingEvent {
  return {
    id: `${uploadId}.review_requested`,
    source: '/avatar-pipeline/moderate',
    type: EventType.reviewRequested,
    subject: uploadKey(playerId, uploadId),
    data: { playerId, uploadId, uploadedAt, labels: [{ name: 'Suggestive', confidence: 72.4 }] },
  };
}

export function failedEvent(playerId: string, uploadId: string): OutgoingEvent {
  return {
    id: `${uploadId}.failed`,
    source: '/avatar-pipeline/profile',
    type: EventType.failed,
    subject: uploadKey(playerId, uploadId),
    data: {
      playerId,
      uploadId,
      uploadedAt,
      reason: { code: 'processing_failed', message: 'Thumbnail generation failed after retries (HTTP 500: event_failed)' },
      failedEventType: EventType.approved,
    },
  };
}

/** Delivers an event in binary mode, as the broker does. */
export function deliver(service: Service, event: OutgoingEvent) {
  const { headers, body } = toBinary(event);
  return service.app.request('/events', { method: 'POST', headers, body });
}

/** Sum of a metric's series matching `labels` in a service's registry. */
export const metricValue = (service: Service, metric: string, labels: Record<string, string> = {}, series = metric) =>
  metricOf(service.metrics.registry, metric, labels, series);
