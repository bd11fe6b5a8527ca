/**
 * The SQS poller where only a scripted queue can go: receives that fail or never answer, a receive
 * held open to watch readiness, a shutdown timed to the millisecond, and the metrics. Everything
 * else (S3 notifying the queue, long polls, deletes after the broker took the events, redelivery
 * after the visibility timeout, the redrive policy, close) runs against moto in sqs-moto.test.ts,
 * through the SQS client as start.ts builds it.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { QueueMessage, SqsQueue } from '../src/index.js';
import { awsNotification, minioBody } from './fixtures.js';
import { counterValue, startSink, testSource, type Sink } from './helpers.js';

const QUEUE_URL = 'https://sqs.us-west-2.amazonaws.com/123456789012/avatar-uploads';

let sink: Sink;

beforeAll(async () => {
  sink = await startSink();
});
afterAll(() => sink?.close());
beforeEach(() => {
  sink.requests.length = 0;
  sink.status = 202;
  sink.delayMs = 0;
});

/** How a receive answers, given the signal the poller passed it. */
type Receive = (signal: AbortSignal) => Promise<QueueMessage[]>;

/** A long poll that only ends when the poller aborts it (as the SDK does on abortSignal). */
const pendingUntilAborted: Receive = (signal) =>
  new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' })), { once: true });
  });

/** A queue whose receives answer as scripted, in order, then wait until aborted; it records what it was asked and what it deleted. */
function scriptedQueue(...answers: Receive[]) {
  const waits: number[] = [];
  const deleted: string[] = [];
  const queue: SqsQueue = {
    receive({ waitSeconds }, signal) {
      waits.push(waitSeconds);
      return (answers.shift() ?? pendingUntilAborted)(signal);
    },
    async delete(receipts) {
      deleted.push(...receipts);
      return [];
    },
  };
  /** The poller asks again only after it finished with the previous batch. */
  const receivedTimes = (n: number) => vi.waitFor(() => expect(waits.length).toBeGreaterThanOrEqual(n));
  return { queue, waits, deleted, receivedTimes };
}

const answer = (...messages: QueueMessage[]): Receive => () => Promise.resolve(messages);

function message(id: string, body: unknown): QueueMessage {
  return { id, receipt: `handle-${id}`, body: typeof body === 'string' ? body : JSON.stringify(body), receiveCount: '1' };
}

function source(queue: SqsQueue, config: { SQS_VISIBILITY_TIMEOUT_SECONDS?: number } = {}, deps: Parameters<typeof testSource>[1] = {}) {
  return testSource(
    { K_SINK: sink.url, SQS_QUEUE_URL: QUEUE_URL, SQS_VISIBILITY_TIMEOUT_SECONDS: 45, ...config },
    { queue, sqsBackoff: { minMs: 5, maxMs: 20 }, sqsTimeouts: { deleteMs: 200 }, ...deps },
  );
}

/** A sink fetch that never answers events from MinIO (only an abort ends it) and passes the rest through. */
const minioHangs: typeof fetch = (input, init) => {
  if (!new Headers(init?.headers).get('ce-source')?.startsWith('minio:')) return fetch(input, init);
  return new Promise((_, reject) => {
    const signal = init?.signal;
    signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
};

describe('SQS poller', () => {
  let running: ReturnType<typeof source> | undefined;
  afterEach(async () => {
    await running?.poller?.close();
    running = undefined;
  });

  it('is ready only once a receive succeeded, and stops on close by aborting the long poll', async () => {
    let first: ((messages: QueueMessage[]) => void) | undefined;
    const sqs = scriptedQueue(() => new Promise((resolve) => (first = resolve)));
    running = source(sqs.queue);
    running.poller!.start();
    await sqs.receivedTimes(1);
    const starting = await running.app.request('/readyz');
    expect(starting.status).toBe(503);
    expect(await starting.json()).toMatchObject({ checks: { sqs: 'failing' } });
    first!([]);
    await sqs.receivedTimes(2);
    expect((await running.app.request('/readyz')).status).toBe(200);

    const started = performance.now();
    await running.poller!.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(sqs.waits).toHaveLength(2);
    const readyz = await running.app.request('/readyz');
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ checks: { sqs: 'failing' } });
  });

  it('backs off after receive errors and reports them on /readyz until a receive succeeds', async () => {
    let release: (() => void) | undefined;
    const recovered = new Promise<void>((resolve) => (release = resolve));
    const sqs = scriptedQueue(
      () => Promise.reject(Object.assign(new Error('The security token included in the request is expired'), { name: 'ExpiredTokenException' })),
      () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { name: 'Error' })),
      async () => {
        await recovered;
        return [];
      },
    );
    running = source(sqs.queue);
    running.poller!.start();
    await sqs.receivedTimes(3);
    const failing = await running.app.request('/readyz');
    expect(failing.status).toBe(503);
    expect(await failing.json()).toMatchObject({ status: 'unavailable', checks: { sqs: 'failing' } });

    release!();
    await sqs.receivedTimes(4);
    expect((await running.app.request('/readyz')).status).toBe(200);
    // Short polls until a receive succeeds, then long polls again.
    expect(sqs.waits).toEqual([0, 0, 0, 20]);
    expect(await counterValue(running, 'avatarpipeline_s3source_sqs_receive_failures_total')).toBe(2);
  });

  it('serves /healthz, /readyz and /metrics while it polls (Deployment probes, Prometheus)', async () => {
    const sqs = scriptedQueue(answer(message('a', awsNotification())));
    running = source(sqs.queue);
    running.poller!.start();
    await sqs.receivedTimes(2);
    expect((await running.app.request('/healthz')).status).toBe(200);
    const readyz = await running.app.request('/readyz');
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toEqual({ status: 'ok', checks: { sqs: 'ok' } });
    const metrics = await (await running.app.request('/metrics')).text();
    expect(metrics).toMatch(/^avatarpipeline_s3source_events_emitted_total\{input="sqs"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^avatarpipeline_s3source_sqs_messages_total\{outcome="deleted"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^avatarpipeline_s3source_sqs_messages_total\{outcome="left"[^}]*\} 0$/m);
    expect(metrics).toMatch(/^avatarpipeline_s3source_sqs_receive_failures_total\{[^}]*\} 0$/m);
  });

  it('gives up what the sink has not taken when the grace period ends: delivered messages deleted, the rest left for redelivery', async () => {
    const sqs = scriptedQueue(answer(message('hangs', minioBody()), message('ok', awsNotification())));
    running = source(sqs.queue, {}, { fetch: minioHangs });
    running.poller!.start();
    await vi.waitFor(() => expect(sink.requests).toHaveLength(1));

    const started = performance.now();
    // 500 ms of grace, a quarter of it kept for the delete: handling is given up after 375 ms.
    await running.poller!.close(500);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(1000);
    expect(sqs.deleted).toEqual(['handle-ok']);
    expect(sqs.waits).toHaveLength(1);
    // Abandoned at shutdown is not a sink failure (no alert), but is counted as left.
    expect(await counterValue(running, 'avatarpipeline_s3source_sink_failures_total')).toBe(0);
    expect(await counterValue(running, 'avatarpipeline_s3source_sqs_messages_total', { outcome: 'left' })).toBe(1);
    expect(await counterValue(running, 'avatarpipeline_s3source_sqs_messages_total', { outcome: 'deleted' })).toBe(1);
  });

  it('treats a receive that never answers as failed: not ready, then polls again', async () => {
    const sqs = scriptedQueue(
      // Hung below the SDK: ignores the abort signal too.
      () => new Promise(() => undefined),
      answer(message('a', awsNotification())),
    );
    running = source(sqs.queue, {}, { sqsTimeouts: { receiveMs: 100, deleteMs: 200 }, sqsBackoff: { minMs: 300, maxMs: 300 } });
    running.poller!.start();
    await vi.waitFor(async () => expect(await counterValue(running!, 'avatarpipeline_s3source_sqs_receive_failures_total')).toBe(1));
    const failing = await running.app.request('/readyz');
    expect(failing.status).toBe(503);
    expect(await failing.json()).toMatchObject({ checks: { sqs: 'failing' } });

    await sqs.receivedTimes(3);
    expect(sqs.deleted).toEqual(['handle-a']);
    expect((await running.app.request('/readyz')).status).toBe(200);
  });

  it('is not ready before it starts, and needs a queue when SQS_QUEUE_URL is set', async () => {
    const idle = source(scriptedQueue().queue);
    expect((await idle.app.request('/readyz')).status).toBe(503);
    expect(() => testSource({ K_SINK: sink.url, SQS_QUEUE_URL: QUEUE_URL })).toThrow(/no queue/);
    expect(testSource({ K_SINK: sink.url }).poller).toBeUndefined();
  });
});
