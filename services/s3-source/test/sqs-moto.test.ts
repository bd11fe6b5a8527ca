/**
 * The SQS input against a real SQS and S3 (moto's server, local/src/stand-ins/moto.ts): the bucket notifies
 * the queue (directly, or through an SNS topic without raw delivery) as configured on AWS, and the
 * real poller long-polls it through the SQS client and queue start.ts builds, posts the CloudEvents
 * to a broker (an HTTP server of the test) and deletes a message only once the broker took every
 * event in it. What moto cannot do (failing or hanging receives) is in sqs.test.ts, with a scripted queue.
 * moto delivers S3 notifications to SQS and SNS itself, s3:TestEvent included; its records lack
 * `responseElements` (AWS's request ids), so event ids are the mapping's hash of the write.
 */
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import { CreateBucketCommand, PutBucketNotificationConfigurationCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clientOptions, s3Client } from '@avatar-pipeline/kit/aws';
import { toCloudEvent } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { BUCKET, motoSkipReason, startMoto, type MotoServer } from '@avatar-pipeline/local';
import { sqsQueue } from '../src/sqs-queue.js';
import { UPLOAD_ID } from './fixtures.js';
import { startSink, testSource, type Sink } from './helpers.js';

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const skipped = motoSkipReason();

/** What the poller asked SQS, and what it was answered, in order. */
interface SqsCall {
  command: string;
  input: Record<string, unknown>;
  messages: Message[];
  /** Requests the broker had not answered yet when the call was made. */
  sinkPending: number;
}

describe.skipIf(skipped)(`SQS input against moto${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let moto: MotoServer;
  let sink: Sink;
  let sqs: SQSClient;
  let s3: S3Client;
  let queueUrl: string;
  let calls: SqsCall[] = [];
  let running: ReturnType<typeof testSource> | undefined;

  beforeAll(async () => {
    moto = await startMoto();
    sink = await startSink();
    // As start.ts builds it; credentials from the environment (dummies: moto takes any).
    sqs = new SQSClient(clientOptions(REGION, moto.endpoint));
    sqs.middlewareStack.add(
      (next, context) => async (args) => {
        const call: SqsCall = {
          command: context.commandName ?? '',
          input: args.input as Record<string, unknown>,
          messages: [],
          sinkPending: sink.pending,
        };
        calls.push(call);
        const result = await next(args);
        call.messages = (result.output as { Messages?: Message[] }).Messages ?? [];
        return result;
      },
      { step: 'initialize', name: 'recordSqsCalls' },
    );
    s3 = s3Client({ region: REGION, s3Endpoint: moto.endpoint });
  });
  afterAll(async () => {
    sqs?.destroy();
    s3?.destroy();
    await sink?.close();
    await moto?.close();
  });
  beforeEach(async () => {
    await moto.reset();
    sink.requests.length = 0;
    sink.status = 202;
    sink.delayMs = 0;
    queueUrl = await createQueue('avatar-uploads');
    calls = [];
  });
  afterEach(async () => {
    await running?.poller?.close();
    running = undefined;
  });

  async function createQueue(name: string, attributes: Record<string, string> = {}): Promise<string> {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    return QueueUrl!;
  }

  /** The bucket notifies the queue of every object created under uploads/, as the eks setup configures it. */
  async function bucketNotifyingQueue(bucket = BUCKET): Promise<void> {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(
      new PutBucketNotificationConfigurationCommand({
        Bucket: bucket,
        NotificationConfiguration: {
          QueueConfigurations: [
            {
              Id: 'avatar-uploads',
              QueueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:avatar-uploads`,
              Events: ['s3:ObjectCreated:*'],
              Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
            },
          ],
        },
      }),
    );
  }

  /**
   * An SNS call in its query protocol (the services have no SNS client). moto routes it by the
   * credential scope and checks no signature.
   */
  async function snsAction(params: Record<string, string>): Promise<void> {
    const res = await fetch(moto.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `AWS4-HMAC-SHA256 Credential=test/20260101/${REGION}/sns/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: new URLSearchParams({ ...params, Version: '2010-03-31' }),
    });
    if (!res.ok) throw new Error(`SNS ${params['Action']} answered ${res.status}: ${await res.text()}`);
  }

  /** Messages in the queue, visible or received and not yet deleted. */
  async function inQueue(url = queueUrl): Promise<{ visible: number; inFlight: number }> {
    const { Attributes = {} } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
    );
    return { visible: Number(Attributes['ApproximateNumberOfMessages']), inFlight: Number(Attributes['ApproximateNumberOfMessagesNotVisible']) };
  }

  const upload = (key: string) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from('not really a jpeg'), ContentType: 'image/jpeg' }));
  const poller = (config: { SQS_VISIBILITY_TIMEOUT_SECONDS?: number } = {}, deps: Parameters<typeof testSource>[1] = {}) =>
    (running = testSource({ K_SINK: sink.url, SQS_QUEUE_URL: queueUrl, AWS_REGION: REGION, ...config }, { queue: sqsQueue(sqs, queueUrl), sqsBackoff: { minMs: 5, maxMs: 20 }, ...deps }));
  const ofCommand = (command: string) => calls.filter((c) => c.command === command);
  const deletedIds = () => ofCommand('DeleteMessageBatchCommand').flatMap((c) => (c.input['Entries'] as { ReceiptHandle: string }[]).map((e) => e.ReceiptHandle));
  const sinkEvents = () => sink.requests.map((r) => toCloudEvent(r.headers as Record<string, string>, r.body));

  it('relays an upload the bucket notified: long polls, maps it as the AWS S3 adapter does, deletes it once the broker took it', async () => {
    await bucketNotifyingQueue();
    // Saving the configuration sends s3:TestEvent to the queue, as S3 does.
    expect(await inQueue()).toEqual({ visible: 1, inFlight: 0 });
    const key = uploadKey('player+1', UPLOAD_ID);
    const { ETag } = await upload(key);
    // A broker that takes a moment: a delete before its answer would show.
    sink.delayMs = 300;
    const source = poller({ SQS_VISIBILITY_TIMEOUT_SECONDS: 30 });
    source.poller!.start();

    await vi.waitFor(async () => expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 }), { timeout: 10_000 });
    // The test event reaches no one: one event, the upload.
    const [event, ...others] = sinkEvents();
    expect(others).toEqual([]);
    expect(event).toMatchObject({
      specversion: '1.0',
      type: 'com.amazonaws.s3.ObjectCreated:Put',
      source: `aws:s3.${REGION}.${BUCKET}`,
      subject: key,
    });
    expect(event?.time).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT/));
    // `+` comes URL-encoded in the notification (%2B): the event carries the key itself.
    expect(event?.data).toMatchObject({ bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` }, object: { key, size: 17, eTag: ETag!.replaceAll('"', '') } });

    // The first receive is a short poll (ready at once), then long polls with the configured limits.
    const receives = ofCommand('ReceiveMessageCommand').map((c) => c.input);
    expect(receives[0]).toMatchObject({ QueueUrl: queueUrl, WaitTimeSeconds: 0, MaxNumberOfMessages: 10, VisibilityTimeout: 30 });
    await vi.waitFor(() => expect(ofCommand('ReceiveMessageCommand').at(-1)?.input).toMatchObject({ WaitTimeSeconds: 20 }));
    // Deletes come after the broker answered what they delete.
    const deletes = ofCommand('DeleteMessageBatchCommand');
    expect(deletes.length).toBeGreaterThan(0);
    for (const d of deletes) expect(d.sinkPending).toBe(0);
    expect(deletedIds()).toHaveLength(2);
    const readyz = await source.app.request('/readyz');
    expect(await readyz.json()).toEqual({ status: 'ok', checks: { sqs: 'ok' } });
  });

  it('relays what arrives through an SNS topic without raw delivery (the SNS envelope)', async () => {
    const TopicArn = `arn:aws:sns:${REGION}:${ACCOUNT}:avatar-uploads`;
    await snsAction({ Action: 'CreateTopic', Name: 'avatar-uploads' });
    await snsAction({ Action: 'Subscribe', TopicArn, Protocol: 'sqs', Endpoint: `arn:aws:sqs:${REGION}:${ACCOUNT}:avatar-uploads` });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(
      new PutBucketNotificationConfigurationCommand({
        Bucket: BUCKET,
        NotificationConfiguration: { TopicConfigurations: [{ TopicArn, Events: ['s3:ObjectCreated:*'] }] },
      }),
    );
    const key = uploadKey('player-2', UPLOAD_ID);
    await upload(key);
    poller().poller!.start();
    await vi.waitFor(async () => expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 }), { timeout: 10_000 });
    // Envelopes around the test event and the upload's notification.
    const bodies = ofCommand('ReceiveMessageCommand').flatMap((c) => c.messages.map((m) => JSON.parse(m.Body ?? '{}') as { Type?: string }));
    expect(bodies.map((b) => b.Type)).toEqual(['Notification', 'Notification']);
    expect(sinkEvents().map((e) => [e.type, e.subject])).toEqual([['com.amazonaws.s3.ObjectCreated:Put', key]]);
    expect(deletedIds()).toHaveLength(2);
  });

  it('leaves what the broker refused (5xx) in the queue: it comes back after the visibility timeout and is deleted once taken', async () => {
    await bucketNotifyingQueue();
    await upload(uploadKey('player-3', UPLOAD_ID));
    sink.status = 503;
    poller({ SQS_VISIBILITY_TIMEOUT_SECONDS: 1 }, { delivery: { retries: 0 } }).poller!.start();

    await vi.waitFor(() => expect(sink.requests.length).toBeGreaterThanOrEqual(1));
    expect(deletedIds()).toHaveLength(1); // the test event only
    expect((await inQueue()).inFlight).toBe(1);
    sink.status = 202;
    // Visible again after 1 s, received a second time, taken, deleted.
    await vi.waitFor(async () => expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 }), { timeout: 10_000 });
    const upload3 = ofCommand('ReceiveMessageCommand')
      .flatMap((c) => c.messages)
      .filter((m) => m.Body?.includes('player-3'));
    expect(upload3.map((m) => m.Attributes?.['ApproximateReceiveCount'])).toEqual(['1', '2']);
    expect(new Set(upload3.map((m) => m.MessageId)).size).toBe(1);
    // Both attempts posted the same event id: the broker's consumers see a duplicate, not a new upload.
    const ids = sinkEvents().map((e) => e.id);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
    expect(deletedIds()).toHaveLength(2);
  });

  it('deletes what the broker took and leaves the rest of the same batch', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const notification = (player: string) =>
      JSON.stringify({
        Records: [
          {
            eventVersion: '2.1',
            eventSource: 'aws:s3',
            awsRegion: REGION,
            eventTime: new Date().toISOString(),
            eventName: 'ObjectCreated:Post',
            s3: { s3SchemaVersion: '1.0', bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` }, object: { key: uploadKey(player, UPLOAD_ID), size: 1 } },
          },
        ],
      });
    for (const body of [notification('refused'), notification('taken'), 'not json', JSON.stringify({ hello: 'world' })]) {
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
    }
    const refuseOne: typeof fetch = (input, init) =>
      new Headers(init?.headers).get('ce-subject')?.includes('/refused/') ? Promise.resolve(new Response(null, { status: 503 })) : fetch(input, init);
    poller({ SQS_VISIBILITY_TIMEOUT_SECONDS: 30 }, { fetch: refuseOne, delivery: { retries: 0 } }).poller!.start();

    await vi.waitFor(() => expect(ofCommand('DeleteMessageBatchCommand')).toHaveLength(1));
    const [batch] = ofCommand('ReceiveMessageCommand').filter((c) => c.messages.length > 0);
    expect(batch?.messages).toHaveLength(4);
    const deleted = batch!.messages.filter((m) => deletedIds().includes(m.ReceiptHandle!));
    expect(deleted.map((m) => m.Body)).toEqual([expect.stringContaining('/taken/')]);
    // The refused event and the two bodies that are not S3 notifications wait for redelivery (or the redrive policy).
    expect(await inQueue()).toEqual({ visible: 0, inFlight: 3 });
  });

  it('moves a message that is not an S3 notification to the dead-letter queue after maxReceiveCount receives', async () => {
    const dlqUrl = await createQueue('avatar-uploads-dlq');
    await sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: queueUrl,
        Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:avatar-uploads-dlq`, maxReceiveCount: 2 }) },
      }),
    );
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'not json' }));
    poller({ SQS_VISIBILITY_TIMEOUT_SECONDS: 1 }).poller!.start();
    await vi.waitFor(async () => expect(await inQueue(dlqUrl)).toEqual({ visible: 1, inFlight: 0 }), { timeout: 10_000 });
    expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 });
    expect(deletedIds()).toEqual([]);
    expect(sink.requests).toEqual([]);
  });

  it('gives a message up shortly before it becomes visible again, and handles it when it comes back', async () => {
    await bucketNotifyingQueue();
    await upload(uploadKey('player-4', UPLOAD_ID));
    // The broker holds the first attempt past the visibility timeout (1 s), then answers at once.
    let attempts = 0;
    const slowFirst: typeof fetch = (input, init) => {
      if (!new Headers(init?.headers).get('ce-subject')?.includes('player-4') || ++attempts > 1) return fetch(input, init);
      return new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error), { once: true }));
    };
    const source = poller({ SQS_VISIBILITY_TIMEOUT_SECONDS: 1 }, { fetch: slowFirst, sqsTimeouts: { deleteMs: 200 } });
    source.poller!.start();
    // Both, not the queue alone: once (Node 24, on a loaded CI run) the queue read empty with only
    // the first attempt made. A message deleted after it was given up would still fail here.
    await vi.waitFor(
      async () => {
        expect(attempts).toBe(2);
        expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 });
      },
      { timeout: 10_000 },
    );
    expect(sinkEvents().map((e) => e.subject)).toEqual([uploadKey('player-4', UPLOAD_ID)]);
    expect((await source.app.request('/readyz')).status).toBe(200);
  });

  it('on close aborts the long poll at once, lets the batch in hand reach the broker, deletes it, and receives no more', async () => {
    await bucketNotifyingQueue();
    const source = poller();
    source.poller!.start();
    // Idle: the poller sits in a 20 s long poll.
    await vi.waitFor(() => expect(ofCommand('ReceiveMessageCommand').at(-1)?.input).toMatchObject({ WaitTimeSeconds: 20 }));
    expect((await source.app.request('/readyz')).status).toBe(200);
    sink.delayMs = 500;
    await upload(uploadKey('player-5', UPLOAD_ID));
    await vi.waitFor(() => expect(sink.pending).toBe(1), { timeout: 5_000 });

    const started = performance.now();
    const receivesBefore = ofCommand('ReceiveMessageCommand').length;
    await source.poller!.close(10_000);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(sink.pending).toBe(0);
    expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 });
    // No receive after the stop: the batch in hand was the last.
    expect(ofCommand('ReceiveMessageCommand')).toHaveLength(receivesBefore);
    expect((await source.app.request('/readyz')).status).toBe(503);

    // An idle poller closes as quickly: the 20 s long poll is aborted.
    const idle = poller();
    idle.poller!.start();
    await vi.waitFor(() => expect(ofCommand('ReceiveMessageCommand').at(-1)?.input).toMatchObject({ WaitTimeSeconds: 20 }));
    const closing = performance.now();
    await idle.poller!.close(10_000);
    expect(performance.now() - closing).toBeLessThan(1_000);
  });
});
