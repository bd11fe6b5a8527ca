import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { sinkDestination } from '../src/output/log-sink.js';
import { freePort } from '../src/ports.js';
import { ChildStartError, SupervisedChild } from '../src/supervision/supervisor.js';
import { eventually } from './support/api.js';

const fixture = fileURLToPath(new URL('./support/child-fixture.mjs', import.meta.url));

describe('SupervisedChild', () => {
  const lines: string[] = [];
  const children: SupervisedChild[] = [];

  async function child(mode: string, options: { readyTimeoutMs?: number; stopGraceMs?: number } = {}) {
    const sink = (line: string) => lines.push(line);
    const supervised = new SupervisedChild(
      { name: `fixture-${mode}`, script: fixture, cwd: process.cwd(), port: await freePort(), env: { ...process.env, FIXTURE_MODE: mode } },
      {
        logger: createLogger('local', 'info', sinkDestination(sink)),
        sink,
        readyTimeoutMs: options.readyTimeoutMs ?? 5000,
        stopGraceMs: options.stopGraceMs ?? 2000,
        restartDelayMs: 50,
      },
    );
    children.push(supervised);
    return supervised;
  }

  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    lines.length = 0;
  });

  it('waits for /readyz and passes log lines on as JSON', async () => {
    const c = await child('ok');
    await c.start();
    expect(c.isReady).toBe(true);
    expect(lines).toContain(JSON.stringify({ level: 'info', service: 'fixture', msg: 'listening' }));
  });

  it('restarts a crashed child after a delay and says so', async () => {
    const c = await child('ok');
    await c.start();
    await fetch(`${c.url}/crash`, { method: 'POST' });
    const plain = await eventually(() => lines.find((l) => l.includes('boom')), 'the crash line');
    // Plain text on stderr becomes a JSON line naming the service.
    expect(JSON.parse(plain)).toMatchObject({ level: 'error', service: 'fixture-ok', stream: 'stderr', msg: 'boom: plain text on stderr' });
    const notice = await eventually(() => lines.find((l) => l.includes('restarting in')), 'the restart notice');
    expect(JSON.parse(notice)).toMatchObject({ level: 'warn', service: 'local', child: 'fixture-ok', code: 1, msg: 'fixture-ok exited with code 1; restarting in 50 ms' });
    await eventually(() => lines.find((l) => l.includes('restarted and ready')), 'the restarted child');
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200);
  });

  it('names a child that exits during start, with its last lines', async () => {
    const c = await child('exit-early');
    const err: unknown = await c.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChildStartError);
    expect((err as Error).message).toMatch(/^fixture-exit-early exited with code 3 before it got ready; its last log lines:/);
    expect((err as Error).message).toContain('cannot reach the database');
  });

  it('names a child that never gets ready', async () => {
    const c = await child('never-ready', { readyTimeoutMs: 800 });
    await expect(c.start()).rejects.toThrow(/fixture-never-ready did not answer http:\/\/127\.0\.0\.1:\d+\/readyz with 200 within 800 ms/);
  });

  it('kills a child that ignores SIGTERM once the grace period is over', async () => {
    const c = await child('stubborn', { stopGraceMs: 300 });
    await c.start();
    const started = Date.now();
    await c.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(lines.some((l) => l.includes('ignoring SIGTERM'))).toBe(true);
    expect(lines.some((l) => l.includes('did not stop in time; killing it'))).toBe(true);
    await expect(fetch(`${c.url}/readyz`)).rejects.toThrow();
  });
});
