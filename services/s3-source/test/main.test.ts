/**
 * The built entry point as a container runs it: start-up refusals, and SQS mode as a plain
 * Deployment runs it (probes and metrics on its port, SIGTERM with a batch in flight), against
 * an SQS stand-in over HTTP and a real sink.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeSqs, type FakeSqs } from './fake-sqs.js';
import { awsNotification } from './fixtures.js';
import { startSink, type Sink } from './helpers.js';

/** The built entry point (npm test builds before testing; or `npx tsc -b services/s3-source`). */
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let sink: Sink;
let sqs: FakeSqs;
beforeAll(async () => {
  sink = await startSink();
  sqs = await startFakeSqs();
});
afterAll(async () => {
  await sink?.close();
  await sqs?.close();
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

  it('polls SQS as a Deployment runs it: probes and metrics on its port; on SIGTERM stops receiving, delivers the batch in hand, deletes it, exits 0', async () => {
    const { child, exited, outcome, logs } = start({
      ...baseEnv(),
      SQS_QUEUE_URL: sqs.queueUrl,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      SHUTDOWN_GRACE_SECONDS: '5',
    });
    try {
      const started = await outcome;
      expect(started, JSON.stringify(started)).toHaveProperty('port');
      const base = `http://127.0.0.1:${(started as { port: number }).port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      await vi.waitFor(async () => expect((await fetch(`${base}/readyz`)).status).toBe(200), { timeout: 5000 });
      expect((await fetch(`${base}/webhook`, { method: 'POST', body: '{}' })).status).toBe(404);

      // One message relayed and deleted.
      const first = sqs.send(JSON.stringify(awsNotification()));
      await vi.waitFor(() => expect(sqs.deleted.map((d) => d.handle)).toContain(first), { timeout: 5000 });
      expect(sink.requests).toHaveLength(1);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^s3source_events_emitted_total\{input="sqs"[^}]*\} 1$/m);
      expect(metrics).toMatch(/^s3source_sqs_messages_total\{outcome="deleted"[^}]*\} 1$/m);

      // A slow broker holds the next one when SIGTERM comes.
      sink.delayMs = 1500;
      const second = sqs.send(JSON.stringify(awsNotification()));
      await vi.waitFor(() => expect(sink.pending).toBe(1), { timeout: 5000 });
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const stoppedAfter = Date.now() - signalled;

      const deletion = sqs.deleted.find((d) => d.handle === second);
      expect(deletion, 'the in-flight message is deleted once the broker accepted it').toBeDefined();
      expect(deletion!.at - signalled).toBeGreaterThanOrEqual(1000);
      expect(stoppedAfter).toBeLessThan(5000);
      // Nothing received after the signal: the long poll under way was aborted, no new one began.
      expect(sqs.calls.filter((c) => c.action === 'ReceiveMessage' && c.at > signalled)).toEqual([]);
      expect(logs.map((l) => l['msg'])).toEqual(expect.arrayContaining(['draining', 'stopped polling SQS', 'stopped']));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('on SIGTERM gives up a message the broker does not take within SHUTDOWN_GRACE_SECONDS, leaving it for redelivery', async () => {
    const { child, exited, outcome } = start({
      ...baseEnv(),
      SQS_QUEUE_URL: sqs.queueUrl,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      SHUTDOWN_GRACE_SECONDS: '2',
    });
    try {
      expect(await outcome).toHaveProperty('port');
      sink.delayMs = 60_000;
      const stuck = sqs.send(JSON.stringify(awsNotification()));
      await vi.waitFor(() => expect(sink.pending).toBe(1), { timeout: 5000 });
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // The sink's own 10 s timeout is cut short: out within the grace period.
      expect(Date.now() - signalled).toBeLessThan(2500);
      expect(sqs.deleted.map((d) => d.handle)).not.toContain(stuck);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
