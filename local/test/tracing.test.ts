/**
 * Tracing end to end (build first: `npx tsc -b`): the real stack with every service exporting
 * OTLP/HTTP JSON to a receiver in this process, a device subscribed at a real push service
 * emulator, and one upload from presign to the push notification. One trace holds it all: the
 * request that issued the upload, the event s3-source made of its notification (continuing that
 * request through the upload record), each stage's event continuing the one before, down to push.
 * Without the built services the suite fails, naming them; it does not skip.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventType, type ServiceName } from '@avatar-pipeline/kit/topology';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '@avatar-pipeline/kit/testing';
import { repoRoot, startStack, type Stack } from '../src/stack.js';
import { requireBuilt } from '../src/test-backends.js';
import { startWebPushTesting, type WebPushTesting } from '../src/stand-ins/web-push-testing.js';
import { ApiClient, eventually, postUpload } from './support/api.js';

const pipeline: readonly ServiceName[] = ['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push'];

describe('tracing through the stack', () => {
  let dataDir: string;
  let receiver: OtlpReceiver;
  let pushService: WebPushTesting;
  let stack: Stack | undefined;
  /** Every span of the upload's trace, once the stack stopped (each service flushes on SIGTERM). */
  let trace: ReceivedSpan[] = [];
  let uploadId: string;

  beforeAll(async () => {
    requireBuilt(pipeline);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-tracing-'));
    receiver = await startOtlpReceiver();
    pushService = await startWebPushTesting();
    stack = await startStack({
      dataDir,
      services: pipeline,
      sink: () => undefined,
      stopGraceMs: 5000,
      env: {
        ...process.env,
        PUSH_ALLOW_HTTP: 'true',
        PUSH_ALLOWED_HOSTS: pushService.host,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
    });
    const api = new ApiClient(stack.gatewayUrl);
    const token = await api.token('p-traced');
    const vapid = await api.json<{ publicKey: string }>('/v1/push/vapid-public-key');
    const { subscription, clientHash } = await pushService.subscribe(vapid.body.publicKey);
    expect((await api.json('/v1/push/subscriptions', { method: 'POST', token, body: JSON.stringify(subscription) })).status).toBe(201);

    const leaf = await readFile(join(repoRoot, 'fixtures', 'photos', 'leaf.jpg'));
    const ticket = await api.requestUpload(token, 'image/jpeg', leaf.length);
    uploadId = ticket.uploadId;
    expect((await postUpload(ticket, leaf, 'image/jpeg')).status).toBe(204);
    expect((await api.settled(token, uploadId)).status).toBe('ready');
    await eventually(async () => ((await pushService.notifications(clientHash)).length > 0 ? true : undefined), 'the push notification');
    await stack.stop();

    const issued = receiver.spans.find((s) => s.service === 'presign' && s.name === 'POST /v1/uploads');
    trace = issued ? receiver.spans.filter((s) => s.traceId === issued.traceId) : [];
  });
  afterAll(async () => {
    await stack?.stop();
    await pushService?.close();
    await receiver?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const byId = () => new Map(trace.map((s) => [s.spanId, s]));
  /** The span and its ancestors, nearest first. */
  const lineage = (span: ReceivedSpan): ReceivedSpan[] => {
    const spans = byId();
    const line = [span];
    for (let parent = spans.get(span.parentSpanId ?? ''); parent; parent = spans.get(parent.parentSpanId ?? '')) line.push(parent);
    return line;
  };
  const only = (predicate: (s: ReceivedSpan) => boolean, what: string): ReceivedSpan => {
    const matches = trace.filter(predicate);
    expect(matches, what).toHaveLength(1);
    return matches[0]!;
  };
  const consumer = (service: ServiceName, type: string) =>
    only((s) => s.service === service && s.kind === 'consumer' && s.name === `process ${type}`, `${service} processing ${type}`);

  it('holds the upload from presign through push in one trace', () => {
    const services = new Set(trace.map((s) => s.service));
    for (const service of ['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'push']) expect(services, service).toContain(service);
    // The player's other requests (subscribing, polling the status) are traces of their own.
    expect(services).not.toContain('subscribe');
  });

  it('chains every hop: each event continues the span that made it', () => {
    const issued = only((s) => s.service === 'presign' && s.name === 'POST /v1/uploads', 'the upload request');
    expect(issued.parentSpanId).toBeUndefined();
    // s3-source has no header from the upload: it continues the request presign recorded with it,
    // and links the notification's own request.
    const emitted = only((s) => s.service === 's3-source' && s.kind === 'producer', 'the upload event');
    expect(emitted.parentSpanId).toBe(issued.spanId);
    expect(emitted.attributes['cloudevents.event_subject']).toBe(`uploads/p-traced/${uploadId}`);
    const [link] = emitted.links;
    expect(receiver.spans.find((s) => s.spanId === link?.spanId)).toMatchObject({ service: 's3-source', kind: 'server', name: 'POST /webhook' });

    const notified = consumer('push', EventType.ready);
    const line = lineage(notified);
    expect(line.at(-1)).toBe(issued);
    expect(line.filter((s) => s.kind !== 'server').map((s) => `${s.service} ${s.name}`)).toEqual([
      `push process ${EventType.ready}`,
      `profile process ${EventType.thumbnailed}`,
      `thumbnail process ${EventType.approved}`,
      'moderate process com.amazonaws.s3.ObjectCreated:*',
      's3-source send com.amazonaws.s3.ObjectCreated:*',
    ]);
    // Each delivery's server span sits between an event and its consumer.
    expect(line[1]).toMatchObject({ service: 'push', kind: 'server', name: 'POST /events' });
  });

  it('has the AWS SDK calls and fetches as child spans', () => {
    const aws = trace.filter((s) => s.attributes['rpc.system'] === 'aws-api');
    const write = aws.find((s) => s.service === 'presign' && s.name === 'DynamoDB.PutItem');
    expect(write && lineage(write)[1]?.name).toBe('POST /v1/uploads');
    const read = aws.find((s) => s.service === 'moderate' && s.name === 'S3.GetObject');
    expect(read && lineage(read).some((s) => s.kind === 'consumer')).toBe(true);
    // undici: s3-source's POST to the broker, and push's POST to the push service.
    const sends = trace.filter((s) => s.kind === 'client' && s.attributes['http.request.method'] === 'POST');
    expect(sends.find((s) => s.service === 's3-source')?.parentSpanId).toBe(only((s) => s.service === 's3-source' && s.kind === 'producer', 'the upload event').spanId);
    const push = sends.find((s) => s.service === 'push' && String(s.attributes['url.full']).startsWith(pushService.url));
    expect(push && lineage(push).some((s) => s.kind === 'consumer' && s.service === 'push')).toBe(true);
  });
});
