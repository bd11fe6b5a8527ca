/**
 * The built entry point as a container runs it: start-up refusals, and SQS mode as a plain
 * Deployment runs it (probes and metrics on its port, SIGTERM with a batch in flight), against
 * a real SQS (moto's server, local/src/stand-ins/moto.ts) and a real sink.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clientOptions } from '@avatar-pipeline/kit/aws';
import { motoSkipReason, startMoto, type MotoServer } from '@avatar-pipeline/local';
import { awsNotification } from './fixtures.js';
import { startSink, type Sink } from './helpers.js';

/** The built entry point (npm test builds before testing; or `npx tsc -b services/s3-source`). */
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const skipped = motoSkipReason();

let sink: Sink;
beforeAll(async () => {
  sink = await startSink();
});
afterAll(async () => {
  await sink?.close();
});
afterEach(() => {
  sink.requests.length = 0;
  sink.delayMs = 0;
});

const baseEnv = () => ({
  PATH: process.env['PATH'] ?? '',
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'info',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  K_SINK: sink.url,
});

/** Starts main.js; resolves with its port once it listens, or with its exit code and stderr. */
function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const outcome = new Promise<{ port: number } | { code: number | null; stderr: string }>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as { port?: number; msg?: string };
      logs.push(entry);
      if (entry.msg === 's3-source listening' && entry.port) resolve({ port: entry.port });
    });
    void exited.then((code) => resolve({ code, stderr }));
  });
  return { child, exited, outcome, logs };
}

describe('s3-source main', () => {
  it('is built', () => {
    expect(existsSync(MAIN), `${MAIN} is missing: run npx tsc -b services/s3-source`).toBe(true);
  });

  it.each([
    ['no input configured', {}, 'invalid configuration: WEBHOOK_AUTH_TOKEN is required (or SQS_QUEUE_URL to poll SQS instead, or WEBHOOK_AUTH_DISABLED=true for a webhook without auth)'],
    [
      'a webhook token next to SQS_QUEUE_URL',
      { SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/uploads', WEBHOOK_AUTH_TOKEN: 'secret' },
      'invalid configuration: WEBHOOK_AUTH_TOKEN is a webhook setting, but SQS_QUEUE_URL selects SQS polling (no webhook): set one of them',
    ],
  ])('refuses to start with %s, in one line', async (_, env, line) => {
    const { outcome } = start({ ...baseEnv(), ...env });
    expect(await outcome).toEqual({ code: 1, stderr: `${line}\n` });
  });
});

describe.skipIf(skipped)(`s3-source main polling SQS on moto${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let moto: MotoServer;
  let sqs: SQSClient;
  let queueUrl: string;
  beforeAll(async () => {
    moto = await startMoto();
    sqs = new SQSClient(clientOptions('us-east-1', moto.endpoint));
  });
  afterAll(async () => {
    sqs?.destroy();
    await moto?.close();
  });
  beforeEach(async () => {
    await moto.reset();
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'avatar-uploads' }))).QueueUrl!;
  });

  const send = (body: string) => sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  /** Messages waiting, and received but not deleted (they come back after the visibility timeout). */
  async function inQueue(): Promise<{ visible: number; inFlight: number }> {
    const { Attributes = {} } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
    );
    return { visible: Number(Attributes['ApproximateNumberOfMessages']), inFlight: Number(Attributes['ApproximateNumberOfMessagesNotVisible']) };
  }
  const sqsEnv = (graceSeconds: number) => ({ ...baseEnv(), SQS_QUEUE_URL: queueUrl, AWS_ENDPOINT_URL_SQS: moto.endpoint, SHUTDOWN_GRACE_SECONDS: String(graceSeconds) });

  it('polls SQS as a Deployment runs it: probes and metrics on its port; on SIGTERM stops receiving, delivers the batch in hand, deletes it, exits 0', async () => {
    const { child, exited, outcome, logs } = start(sqsEnv(5));
    try {
      const started = await outcome;
      expect(started, JSON.stringify(started)).toHaveProperty('port');
      const base = `http://127.0.0.1:${(started as { port: number }).port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      await vi.waitFor(async () => expect((await fetch(`${base}/readyz`)).status).toBe(200), { timeout: 5000 });
      expect((await fetch(`${base}/webhook`, { method: 'POST', body: '{}' })).status).toBe(404);

      // One message relayed and deleted.
      await send(JSON.stringify(awsNotification()));
      await vi.waitFor(async () => expect(await inQueue()).toEqual({ visible: 0, inFlight: 0 }), { timeout: 5000 });
      expect(sink.requests).toHaveLength(1);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^avatarpipeline_s3source_events_emitted_total\{input="sqs"[^}]*\} 1$/m);
      expect(metrics).toMatch(/^avatarpipeline_s3source_sqs_messages_total\{outcome="deleted"[^}]*\} 1$/m);

      // A slow broker holds the next one when SIGTERM comes.
      sink.delayMs = 1500;
      await send(JSON.stringify(awsNotification()));
      await vi.waitFor(() => expect(sink.pending).toBe(1), { timeout: 5000 });
      const signalled = Date.now();
      child.kill('SIGTERM');
      // Sent after the signal: no receive may take it.
      await send(JSON.stringify(awsNotification()));
      // The broker still holds the batch in hand: not deleted yet.
      expect(await inQueue()).toEqual({ visible: 1, inFlight: 1 });
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5000);

      // The batch in hand deleted once the broker took it; the later message untouched.
      expect(sink.requests).toHaveLength(2);
      expect(await inQueue()).toEqual({ visible: 1, inFlight: 0 });
      expect(logs.map((l) => l['msg'])).toEqual(expect.arrayContaining(['draining', 'stopped polling SQS', 'stopped']));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('on SIGTERM gives up a message the broker does not take within SHUTDOWN_GRACE_SECONDS, leaving it for redelivery', async () => {
    const { child, exited, outcome } = start(sqsEnv(2));
    try {
      expect(await outcome).toHaveProperty('port');
      sink.delayMs = 60_000;
      await send(JSON.stringify(awsNotification()));
      await vi.waitFor(() => expect(sink.pending).toBe(1), { timeout: 5000 });
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // The sink's own 10 s timeout is cut short: out within the grace period.
      expect(Date.now() - signalled).toBeLessThan(2500);
      // Not deleted: it comes back after the visibility timeout.
      expect(await inQueue()).toEqual({ visible: 0, inFlight: 1 });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
