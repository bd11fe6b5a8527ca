import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { awsNotification, minioBody, s3TestEvent, snsEnvelope } from './fixtures.js';
import { counterValue, startSink, testSource, type Sink } from './helpers.js';

const QUEUE_URL = 'https://sqs.us-west-2.amazonaws.com/123456789012/avatar-uploads';

const client = new SQSClient({ region: 'us-west-2' });
const sqs = mockClient(client);
let sink: Sink;

beforeAll(async () => {
  sink = await startSink();
});
afterAll(() => sink?.close());
beforeEach(() => {
  sqs.reset();
  sink.requests.length = 0;
  sink.status = 202;
});

/** A long poll that only ends when the poller aborts it (as the SDK does on abortSignal). */
function pendingUntilAborted(): Promise<never> {
  // The mock hides `send`'s second argument from fakes: read it from the recorded call.
  const options = (sqs.send.lastCall.args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined;
  return new Promise((_, reject) => {
    options?.abortSignal?.addEventListener('abort', () => reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' })), { once: true });
  });
}

function message(id: string, body: unknown): Message {
  return { MessageId: id, ReceiptHandle: `handle-${id}`, Body: typeof body === 'string' ? body : JSON.stringify(body), Attributes: { ApproximateReceiveCount: '1' } };
}

function source() {
  return testSource({ K_SINK: sink.url, SQS_QUEUE_URL: QUEUE_URL, SQS_VISIBILITY_TIMEOUT_SECONDS: 45 }, { sqs: client, sqsBackoff: { minMs: 5, maxMs: 20 } });
}

const deletedHandles = () =>
  sqs.commandCalls(DeleteMessageBatchCommand).flatMap((call) => call.args[0].input.Entries?.map((e) => e.ReceiptHandle) ?? []);
/** The poller asks again only after it finished with the previous batch. */
const receivedTimes = (n: number) => vi.waitFor(() => expect(sqs.commandCalls(ReceiveMessageCommand).length).toBeGreaterThanOrEqual(n));

describe('SQS poller', () => {
  let running: ReturnType<typeof source> | undefined;
  afterEach(async () => {
    await running?.poller?.close();
    running = undefined;
  });

  it('long-polls with the configured limits, maps, posts, then deletes', async () => {
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({
        Messages: [message('direct', awsNotification()), message('sns', snsEnvelope(minioBody())), message('test', s3TestEvent)],
      })
      .callsFake(pendingUntilAborted);
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    running = source();
    running.poller!.start();
    await receivedTimes(2);

    expect(sqs.commandCalls(ReceiveMessageCommand)[0]?.args[0].input).toMatchObject({
      QueueUrl: QUEUE_URL,
      WaitTimeSeconds: 20,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: 45,
    });
    expect(sink.requests.map((r) => r.headers['ce-source']).sort()).toEqual(['aws:s3.us-west-2.avatars-prod', 'minio:s3.us-east-1.avatars']);
    expect(sqs.commandCalls(DeleteMessageBatchCommand)[0]?.args[0].input.QueueUrl).toBe(QUEUE_URL);
    expect(deletedHandles().sort()).toEqual(['handle-direct', 'handle-sns', 'handle-test']);
    expect(await counterValue(running, 's3source_events_emitted_total', { input: 'sqs' })).toBe(2);
    expect(await counterValue(running, 's3source_records_skipped_total', { reason: 'test_event' })).toBe(1);
  });

  it('leaves a message whose events the sink refused, deleting the rest of the batch', async () => {
    let calls = 0;
    const flaky = testSource(
      { K_SINK: sink.url, SQS_QUEUE_URL: QUEUE_URL },
      {
        sqs: client,
        delivery: { retries: 1, retryDelayMs: 1 },
        // The MinIO-shaped message's event is refused every time; the other goes through.
        fetch: (input, init) => {
          calls += 1;
          const headers = new Headers(init?.headers);
          return headers.get('ce-source')?.startsWith('minio:') ? Promise.resolve(new Response(null, { status: 503 })) : fetch(input, init);
        },
      },
    );
    running = flaky;
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [message('refused', minioBody()), message('ok', awsNotification())] })
      .callsFake(pendingUntilAborted);
    sqs.on(DeleteMessageBatchCommand).resolves({});
    flaky.poller!.start();
    await receivedTimes(2);

    expect(calls).toBe(3);
    expect(deletedHandles()).toEqual(['handle-ok']);
    expect(await counterValue(flaky, 's3source_sink_failures_total')).toBe(1);
  });

  it('deletes nothing when the sink is down', async () => {
    sink.status = 500;
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [message('a', awsNotification()), message('b', minioBody())] })
      .callsFake(pendingUntilAborted);
    running = source();
    running.poller!.start();
    await receivedTimes(2);
    expect(sink.requests.length).toBeGreaterThanOrEqual(2);
    expect(sqs.commandCalls(DeleteMessageBatchCommand)).toHaveLength(0);
  });

  it('keeps messages that are not S3 notifications for the redrive policy', async () => {
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [message('junk', 'not json'), message('other', { hello: 'world' }), message('ok', awsNotification())] })
      .callsFake(pendingUntilAborted);
    sqs.on(DeleteMessageBatchCommand).resolves({});
    running = source();
    running.poller!.start();
    await receivedTimes(2);
    expect(deletedHandles()).toEqual(['handle-ok']);
  });

  it('stops on close by aborting the long poll', async () => {
    sqs.on(ReceiveMessageCommand).callsFake(pendingUntilAborted);
    running = source();
    running.poller!.start();
    await receivedTimes(1);
    expect((await running.app.request('/readyz')).status).toBe(200);

    const started = performance.now();
    await running.poller!.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(sqs.commandCalls(ReceiveMessageCommand)).toHaveLength(1);
    const readyz = await running.app.request('/readyz');
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ checks: { sqs: 'failing' } });
  });

  it('backs off after receive errors and reports them on /readyz until a receive succeeds', async () => {
    let release: (() => void) | undefined;
    const recovered = new Promise<void>((resolve) => (release = resolve));
    sqs
      .on(ReceiveMessageCommand)
      .rejectsOnce(Object.assign(new Error('The security token included in the request is expired'), { name: 'ExpiredTokenException' }))
      .rejectsOnce(Object.assign(new Error('connect ECONNREFUSED'), { name: 'Error' }))
      .callsFakeOnce(async () => {
        await recovered;
        return {};
      })
      .callsFake(pendingUntilAborted);
    running = source();
    running.poller!.start();
    await receivedTimes(3);
    const failing = await running.app.request('/readyz');
    expect(failing.status).toBe(503);
    expect(await failing.json()).toMatchObject({ status: 'unavailable', checks: { sqs: 'failing' } });

    release!();
    await receivedTimes(4);
    expect((await running.app.request('/readyz')).status).toBe(200);
  });

  it('is not ready before it starts, and needs a client when a queue is configured', async () => {
    const idle = source();
    expect((await idle.app.request('/readyz')).status).toBe(503);
    expect(() => testSource({ K_SINK: sink.url, SQS_QUEUE_URL: QUEUE_URL })).toThrow(/SQS client/);
    expect(testSource({ K_SINK: sink.url }).poller).toBeUndefined();
  });
});
