/**
 * `npm run events` (local/dist/events-cli.js, build first: `npx tsc -b`) as a separate process
 * against a real broker's feed, found through the stack's state file, and against a real stack.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { toBinary } from '@avatar-pipeline/kit/cloudevents';
import { readStackState, stateFile, writeStackState } from '../src/stack-state.js';
import { repoRoot, startStack } from '../src/stack.js';
import { startServedBroker, testEvent, trigger, type ServedBroker } from './support/served-broker.js';

const cli = join(repoRoot, 'local', 'dist', 'events-cli.js');

interface Run {
  /** Complete lines so far. */
  out: string[];
  err: () => string;
  code: Promise<number | null>;
  /** Resolves once stderr contains `text`. */
  said(text: string): Promise<void>;
}

const running: ReturnType<typeof spawn>[] = [];
const cleanup: (() => Promise<void>)[] = [];
let dataDir: string;

beforeEach(async () => {
  expect(existsSync(cli), `${cli} is missing: run npx tsc -b`).toBe(true);
  dataDir = await mkdtemp(join(tmpdir(), 'events-cli-'));
});

afterEach(async () => {
  for (const child of running.splice(0)) child.kill();
  for (const step of cleanup.splice(0).reverse()) await step();
  await rm(dataDir, { recursive: true, force: true });
});

function run(...args: string[]): Run {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env['PATH'] ?? '', LOCAL_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let stdout = '';
  let stderr = '';
  const out: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    const lines = stdout.split('\n');
    stdout = lines.pop() ?? '';
    out.push(...lines);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return {
    out,
    err: () => stderr,
    code,
    said: (text) => vi.waitFor(() => expect(stderr).toContain(text), { timeout: 10_000, interval: 20 }),
  };
}

/** A broker the state file names, as a running stack's would be. */
async function servedStack(...args: Parameters<typeof startServedBroker>): Promise<ServedBroker> {
  const served = await startServedBroker(...args);
  cleanup.push(() => served.close());
  cleanup.push(await writeStackState(dataDir, { pid: process.pid, gatewayUrl: 'http://127.0.0.1:9', brokerUrl: served.url, startedAt: new Date().toISOString() }));
  return served;
}

const UPLOAD = '0190a0b0-0000-7000-8000-00000000abcd';
const time = String.raw`\d\d:\d\d:\d\d\.\d{3}`;

describe('npm run events', () => {
  it('says how to start the stack when none runs, or the one named has gone', async () => {
    const none = run();
    expect(await none.code).toBe(1);
    expect(none.err()).toBe(`no local stack is running (no ${stateFile(dataDir)}): start it with npm start\n`);

    // A stack that was killed leaves its file behind, naming a process that no longer exists.
    const gone = spawn(process.execPath, ['-e', '']);
    const pid = gone.pid!;
    await new Promise((resolve) => gone.on('exit', resolve));
    await writeStackState(dataDir, { pid, gatewayUrl: 'http://127.0.0.1:9', brokerUrl: 'http://127.0.0.1:9', startedAt: new Date().toISOString() });
    const stale = run();
    expect(await stale.code).toBe(1);
    expect(stale.err()).toContain('start it with npm start');
  });

  it('prints one plain line per happening when piped, and filters by type and subject', async () => {
    const served = await servedStack([trigger('flaky', 'test.flaky', 'moderate'), trigger('broken', 'test.broken', 'thumbnail', { retry: 0 })], {
      moderate: (_r, n) => ({ status: n === 0 ? 503 : 202 }),
      thumbnail: () => ({ status: 422 }),
      profile: () => ({ status: 202 }),
    });
    const all = run();
    const bySubject = run('--subject', 'player-2/');
    const byType = run('--type', 'broken');
    await Promise.all([all, bySubject, byType].map((r) => r.said('listening to the broker at')));
    served.broker.ingest(testEvent('test.flaky', `${UPLOAD}.approved`, `uploads/player-1/${UPLOAD}`));
    await served.broker.idle();
    served.broker.ingest(testEvent('test.broken', 'REQ42.HOSTabc', 'uploads/player-2/x'));
    await served.broker.idle();
    await vi.waitFor(() => expect(all.out).toHaveLength(5));
    const patterns = [
      `accepted       test.flaky  uploads/player-1/${UPLOAD}  0000abcd.approved  ingress → flaky`,
      `retrying       test.flaky  uploads/player-1/${UPLOAD}  0000abcd.approved  flaky: answered 503 \\(attempt 1\\), retry in 10 ms`,
      `delivered      test.flaky  uploads/player-1/${UPLOAD}  0000abcd.approved  flaky: 202 after 2 attempts`,
      'accepted       test.broken  uploads/player-2/x  REQ42  ingress → broken',
      'dead-lettered  test.broken  uploads/player-2/x  REQ42  broken: answered 422 → dead-letter sink',
    ];
    expect(all.out).toEqual(patterns.map((p) => expect.stringMatching(new RegExp(`^${time}  ${p}$`))));
    expect(all.out.join('\n')).not.toContain('\x1b[');
    await vi.waitFor(() => expect(bySubject.out).toHaveLength(2));
    await vi.waitFor(() => expect(byType.out).toHaveLength(2));
    for (const filtered of [bySubject, byType]) expect(filtered.out.every((l) => l.includes('test.broken  uploads/player-2/x'))).toBe(true);
  });

  it('prints the broker entries as JSON lines with --json', async () => {
    const served = await servedStack([trigger('t', 'test.t', 'moderate')], { moderate: () => ({ status: 202 }) });
    const json = run('--json');
    await json.said('listening');
    served.broker.ingest(testEvent('test.t', 'j1'));
    await vi.waitFor(() => expect(json.out).toHaveLength(2));
    expect(json.out.map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({ outcome: 'accepted', id: 'j1', type: 'test.t', source: '/test', subject: 'uploads/p/u', origin: 'http', triggers: ['t'] }),
      expect.objectContaining({ outcome: 'delivered', id: 'j1', trigger: 't', status: 202, attempts: 1 }),
    ]);
  });

  it('reconnects when the connection breaks while the stack runs, and leaves when it stops', async () => {
    const first = await startServedBroker([], {});
    const removeFirst = await writeStackState(dataDir, { pid: process.pid, gatewayUrl: 'http://127.0.0.1:9', brokerUrl: first.url, startedAt: new Date().toISOString() });
    const tail = run();
    await tail.said('listening to the broker at');
    // The connection breaks, the state file still names a live stack: keep trying.
    await first.close();
    await tail.said(`lost the broker at ${first.url}/_broker/events`);
    const second = await startServedBroker([trigger('t', 'test.t', 'moderate')], { moderate: () => ({ status: 202 }) });
    const removeSecond = await writeStackState(dataDir, { pid: process.pid, gatewayUrl: 'http://127.0.0.1:9', brokerUrl: second.url, startedAt: new Date().toISOString() });
    await tail.said(`reconnected to the broker at ${second.url}`);
    second.broker.ingest(testEvent('test.t', 'after'));
    await vi.waitFor(() => expect(tail.out.some((l) => /delivered .* after {2}t: 202$/.test(l))).toBe(true));
    // Stopping: the stack removes its state file, then closes the stream.
    await removeSecond();
    await second.close();
    expect(await tail.code).toBe(0);
    expect(tail.err()).toMatch(/the stack stopped\n$/);
    await removeFirst();
  });

  it('follows a real stack from start to stop', async () => {
    const stack = await startStack({ dataDir, services: [], sink: () => {}, logLevel: 'silent' });
    cleanup.push(() => stack.stop());
    expect(await readStackState(dataDir)).toMatchObject({ pid: process.pid, brokerUrl: stack.brokerUrl, gatewayUrl: stack.gatewayUrl });
    const tail = run();
    await tail.said(`listening to the broker at ${stack.brokerUrl}/_broker/events`);
    const { headers, body } = toBinary({ id: 'e2e-1', source: '/test', type: 'test.nobody', subject: 'uploads/p/e2e', data: {} });
    expect((await fetch(stack.brokerUrl, { method: 'POST', headers, body })).status).toBe(202);
    await vi.waitFor(() => expect(tail.out).toEqual([expect.stringMatching(new RegExp(`^${time}  dropped        test.nobody  uploads/p/e2e  e2e-1  no trigger matches$`))]));
    await stack.stop();
    expect(await tail.code).toBe(0);
    expect(tail.err()).toContain('the stack stopped');
    expect(existsSync(stateFile(dataDir))).toBe(false);
  });
});
