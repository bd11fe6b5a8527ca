import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toCloudEvent } from '@avatar-pipeline/kit/cloudevents';
import { ConfigError } from '@avatar-pipeline/kit/config';
import { BUCKET, startTestBackends } from '@avatar-pipeline/local';
import type { SqsQueue } from '../src/index.js';
import { UPLOAD_ID, awsNotification, minioBody } from './fixtures.js';
import { counterValue, deadUrl, post, startSink, testSource, type Sink } from './helpers.js';

let sink: Sink;
beforeAll(async () => {
  sink = await startSink();
});
afterAll(() => sink?.close());
afterEach(() => {
  sink.requests.length = 0;
  sink.status = 202;
});

const key = `uploads/player-1/${UPLOAD_ID}`;
/** SQS mode's queue, in tests that never start the poller. */
const emptyQueue: SqsQueue = { receive: async () => [], delete: async () => [] };

describe('POST /webhook', () => {
  it('posts the CloudEvent to the sink in binary mode and answers 200', async () => {
    const source = testSource({ K_SINK: sink.url });
    const res = await post(source, JSON.stringify(minioBody()));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ emitted: 1, skipped: 0 });

    expect(sink.requests).toHaveLength(1);
    const [req] = sink.requests;
    expect(req?.method).toBe('POST');
    expect(req?.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': '18BE12ED5938E79E.dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8',
      'ce-source': 'minio:s3.us-east-1.avatars',
      'ce-type': 'com.amazonaws.s3.ObjectCreated:Post',
      'ce-subject': key,
      'ce-time': '2025-05-04T10:11:12.345Z',
    });
    expect(req?.headers['content-type']).toMatch(/^application\/json/);
    const data = JSON.parse(req!.body) as { bucket: { name: string }; object: { key: string; eTag: string } };
    expect(data.bucket.name).toBe('avatars');
    expect(data.object).toMatchObject({ key, eTag: '5d41402abc4b2a76b9719d911017c592', size: 48213 });

    // And it parses back as one valid CloudEvent.
    const headers = Object.fromEntries(Object.entries(req!.headers).map(([k, v]) => [k, String(v)]));
    const ce = toCloudEvent(headers, req!.body);
    expect(ce.datacontenttype).toBe('application/json');
    expect(ce.subject).toBe(key);

    expect(await counterValue(source, 'avatarpipeline_s3source_events_emitted_total', { input: 'webhook' })).toBe(1);
  });

  it('continues the trace recorded with the upload, and sends the event all the same when it cannot be read', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const asked: string[] = [];
    const recorded = testSource(
      { K_SINK: sink.url },
      {
        uploadTrace: async (playerId, uploadId) => {
          asked.push(`${playerId}/${uploadId}`);
          return { traceparent, tracestate: 'vendor=1' };
        },
      },
    );
    expect((await post(recorded, JSON.stringify(minioBody()))).status).toBe(200);
    expect(asked).toEqual([`player-1/${UPLOAD_ID}`]);
    expect(sink.requests[0]?.headers).toMatchObject({ 'ce-traceparent': traceparent, 'ce-tracestate': 'vendor=1' });

    const unreadable = testSource({ K_SINK: sink.url }, { uploadTrace: () => Promise.reject(new Error('AccessDenied')) });
    expect((await post(unreadable, JSON.stringify(minioBody()))).status).toBe(200);
    expect(sink.requests).toHaveLength(2);
    expect(sink.requests[1]?.headers['ce-traceparent']).toBeUndefined();
  });

  it('accepts the s3rver shape on POST / too', async () => {
    const source = testSource({ K_SINK: sink.url });
    const res = await post(source, JSON.stringify(awsNotification()), {}, '/');
    expect(res.status).toBe(200);
    expect(sink.requests.map((r) => r.headers['ce-subject'])).toEqual([`uploads/player+1/${UPLOAD_ID}`]);
  });

  it('skips keys outside uploads/ without calling the sink', async () => {
    const source = testSource({ K_SINK: sink.url });
    const res = await post(source, JSON.stringify(minioBody(`avatars/player-1/${UPLOAD_ID}/256.webp`)));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ emitted: 0, skipped: 1 });
    expect(sink.requests).toHaveLength(0);
    expect(await counterValue(source, 'avatarpipeline_s3source_records_skipped_total', { reason: 'outside_uploads' })).toBe(1);
  });

  it.each([
    ['not JSON', 'hello'],
    ['JSON that is not a notification', '{"foo":1}'],
    ['a record without its s3 element', JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', eventSource: 'aws:s3', eventTime: '2025-05-04T10:11:12Z' }] })],
  ])('answers 400 JSON to %s', async (_, body) => {
    const source = testSource({ K_SINK: sink.url });
    const res = await post(source, body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; message: string } };
    expect(json.error.code).toBe('invalid_notification');
    expect(json.error.message.length).toBeGreaterThan(0);
    expect(sink.requests).toHaveLength(0);
  });

  it('answers 502 when the sink is down, so the sender retries', async () => {
    const source = testSource({ K_SINK: await deadUrl() });
    const res = await post(source, JSON.stringify(minioBody()));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('sink_unavailable');
    expect(await counterValue(source, 'avatarpipeline_s3source_sink_failures_total')).toBe(1);
    expect(await counterValue(source, 'avatarpipeline_s3source_events_emitted_total', { input: 'webhook' })).toBe(0);
  });

  it('retries a failing sink a few times before answering 502', async () => {
    sink.status = 503;
    const source = testSource({ K_SINK: sink.url }, { delivery: { retries: 2, retryDelayMs: 1 } });
    const res = await post(source, JSON.stringify(minioBody()));
    expect(res.status).toBe(502);
    expect(sink.requests).toHaveLength(3);
    expect(new Set(sink.requests.map((r) => r.headers['ce-id'])).size).toBe(1);
  });

  it('answers 502 when any one event of the notification was refused', async () => {
    let calls = 0;
    const source = testSource({ K_SINK: sink.url }, {
      delivery: { retries: 0, concurrency: 1 },
      fetch: (input, init) => (++calls === 1 ? Promise.resolve(new Response(null, { status: 500 })) : fetch(input, init)),
    });
    const body = { Records: [...minioBody().Records, ...awsNotification().Records] };
    const res = await post(source, JSON.stringify(body));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/accepted 1 of 2 events/);
    expect(sink.requests).toHaveLength(1);
    expect(await counterValue(source, 'avatarpipeline_s3source_sink_failures_total')).toBe(1);
    expect(await counterValue(source, 'avatarpipeline_s3source_events_emitted_total', { input: 'webhook' })).toBe(1);
  });
});

describe('webhook auth', () => {
  const token = 'c2VjcmV0LXRva2VuLWZvci1taW5pbw';

  it.each([
    ['no Authorization header', {}],
    ['a wrong token', { authorization: 'Bearer nope' }],
    ['the token with extra text', { authorization: `Bearer ${token}x` }],
    ['the token without the Bearer scheme', { authorization: token }],
  ])('rejects %s with 401', async (_, headers) => {
    const source = testSource({ K_SINK: sink.url, WEBHOOK_AUTH_TOKEN: token });
    const res = await post(source, JSON.stringify(minioBody()), headers);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    expect(sink.requests).toHaveLength(0);
  });

  it('accepts the token as MinIO sends it', async () => {
    const source = testSource({ K_SINK: sink.url, WEBHOOK_AUTH_TOKEN: token });
    expect((await post(source, JSON.stringify(minioBody()), { authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await post(source, JSON.stringify(minioBody()), { authorization: `bearer ${token}` }, '/')).status).toBe(200);
    expect(sink.requests).toHaveLength(2);
  });

  it('checks auth before reading the body', async () => {
    const source = testSource({ K_SINK: sink.url, WEBHOOK_AUTH_TOKEN: token });
    expect((await post(source, 'garbage')).status).toBe(401);
  });

  it('does not start without a token unless told to serve the webhook open', () => {
    expect(() => testSource({ K_SINK: sink.url, WEBHOOK_AUTH_DISABLED: false })).toThrow(ConfigError);
    expect(() => testSource({ K_SINK: sink.url, WEBHOOK_AUTH_DISABLED: false })).toThrow(/WEBHOOK_AUTH_TOKEN is required/);
  });

  it('serves the webhook without a token only on WEBHOOK_AUTH_DISABLED=true', async () => {
    const source = testSource({ K_SINK: sink.url, WEBHOOK_AUTH_DISABLED: true });
    expect(source.mode).toEqual({ input: 'webhook', token: undefined });
    const res = await post(source, JSON.stringify(minioBody()));
    expect(res.status).toBe(200);
    expect(sink.requests).toHaveLength(1);
  });

  it('serves no webhook when it polls SQS', async () => {
    const source = testSource({ K_SINK: sink.url, SQS_QUEUE_URL: 'https://sqs.test/q' }, { queue: emptyQueue });
    expect(source.mode).toEqual({ input: 'sqs', queueUrl: 'https://sqs.test/q' });
    expect((await post(source, JSON.stringify(minioBody()))).status).toBe(404);
    expect((await post(source, JSON.stringify(minioBody()), { authorization: `Bearer ${token}` }, '/')).status).toBe(404);
    expect(sink.requests).toHaveLength(0);
  });

  it('refuses a webhook token or an open webhook next to SQS_QUEUE_URL', () => {
    expect(() => testSource({ K_SINK: sink.url, SQS_QUEUE_URL: 'https://sqs.test/q', WEBHOOK_AUTH_TOKEN: token }, { queue: emptyQueue })).toThrow(ConfigError);
    expect(() => testSource({ K_SINK: sink.url, SQS_QUEUE_URL: 'https://sqs.test/q', WEBHOOK_AUTH_DISABLED: true }, { queue: emptyQueue })).toThrow(
      /SQS_QUEUE_URL selects SQS polling/,
    );
  });

  it('sends the broker the OIDC token its SinkBinding mounted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 's3-source-token-'));
    try {
      await writeFile(join(dir, 'token'), 'sink-binding-token');
      const source = testSource({ K_SINK: sink.url, WEBHOOK_AUTH_TOKEN: token, K_SINK_OIDC_TOKEN_FILE: join(dir, 'token') });
      expect((await post(source, JSON.stringify(minioBody()), { authorization: `Bearer ${token}` })).status).toBe(200);
      expect(sink.requests.map((r) => r.headers.authorization)).toEqual(['Bearer sink-binding-token']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('local stack: s3rver -> webhook -> sink', () => {
  it('relays what a real s3rver emits for an upload', async () => {
    const source = testSource({ K_SINK: sink.url });
    const posted: (Response | Promise<Response>)[] = [];
    const backends = await startTestBackends({ prefix: 's3-source-', dynamo: false, s3: { onEvent: (n) => posted.push(post(source, JSON.stringify(n))) } });
    try {
      await backends.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'png bytes', ContentType: 'image/png' }));
      const responses = await Promise.all(posted);
      expect(responses.map((r) => r.status)).toEqual([200]);
      expect(sink.requests).toHaveLength(1);
      expect(sink.requests[0]?.headers).toMatchObject({ 'ce-type': 'com.amazonaws.s3.ObjectCreated:Put', 'ce-source': 'aws:s3.us-east-1.avatars', 'ce-subject': key });
    } finally {
      await backends.close();
    }
  });
});
