import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runService, type RunningService } from '../src/server.js';
import { createService } from '../src/service.js';
import { captureLogs, deferred } from './helpers.js';

/** Resolves with the error code of a fresh TCP connection attempt, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('runService', () => {
  let running: RunningService | undefined;

  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('drains in-flight requests, refuses new connections, then runs onClose', async () => {
    const logs = captureLogs('drain');
    const service = createService({ name: 'drain', logger: logs.logger });
    const entered = deferred();
    const release = deferred();
    const order: string[] = [];
    service.app.get('/slow', async (c) => {
      entered.resolve();
      await release.promise;
      order.push('handler done');
      return c.json({ done: true });
    });
    running = await runService(service, {
      port: 0,
      hostname: '127.0.0.1',
      graceMs: 5000,
      onClose: () => {
        order.push('onClose');
      },
    });
    const { port } = running;
    expect(port).toBeGreaterThan(0);
    running.server.on('request', (_req, res: ServerResponse) => res.once('finish', () => order.push('response sent')));
    expect(await tryConnect(port)).toBe('connected');

    const inflight = fetch(`http://127.0.0.1:${port}/slow`).then(async (res) => ({
      status: res.status,
      connection: res.headers.get('connection'),
      body: await res.json(),
    }));
    await entered.promise;
    expect(service.lifecycle.active).toBe(1);

    let closed = false;
    const closing = running.close().then(() => (closed = true));
    expect(running.close()).toBe(running.close());

    // Draining: new connections are refused, readiness fails, nothing has been torn down yet.
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    const ready = await service.app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    expect(order).toEqual([]);

    release.resolve();
    // The answer tells the keep-alive client not to reuse the connection.
    expect(await inflight).toEqual({ status: 200, connection: 'close', body: { done: true } });
    await closing;
    expect(order).toEqual(['handler done', 'response sent', 'onClose']);
    expect(logs.entries().map((e) => e['msg'])).toContain('stopped');
  });

  it('delivers a streamed response that is still being written when the handler returns', async () => {
    const service = createService({ name: 'stream', logger: captureLogs().logger });
    const entered = deferred();
    const chunk = 'x'.repeat(64 * 1024);
    service.app.get('/stream', (c) => {
      entered.resolve();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await new Promise((r) => setTimeout(r, 5));
          if (sent === 20) return controller.close();
          sent += 1;
          controller.enqueue(new TextEncoder().encode(chunk));
        },
      });
      return c.body(body, 200, { 'content-type': 'text/plain' });
    });
    running = await runService(service, { port: 0, hostname: '127.0.0.1', graceMs: 5000 });
    const res = await fetch(`http://127.0.0.1:${running.port}/stream`);
    await entered.promise;
    const closing = running.close();
    expect((await res.text()).length).toBe(20 * chunk.length);
    await closing;
  });

  it('gives up on requests still running after the grace period', async () => {
    const logs = captureLogs('grace');
    const service = createService({ name: 'grace', logger: logs.logger });
    const entered = deferred();
    service.app.get('/stuck', async () => {
      entered.resolve();
      return new Promise<Response>(() => undefined);
    });
    let onCloseRan = false;
    running = await runService(service, {
      port: 0,
      hostname: '127.0.0.1',
      graceMs: 100,
      onClose: () => {
        onCloseRan = true;
      },
    });
    const stuck = fetch(`http://127.0.0.1:${running.port}/stuck`).then(
      () => 'answered',
      () => 'cut off',
    );
    await entered.promise;
    const started = Date.now();
    await running.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await stuck).toBe('cut off');
    expect(onCloseRan).toBe(true);
    expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'grace period over with requests in flight', inflight: 1 }));
  });

  it('does not pile up signal listeners across services', async () => {
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
    for (let i = 0; i < 3; i++) {
      const r = await runService(createService({ name: `s${i}`, logger: captureLogs().logger }), { port: 0, hostname: '127.0.0.1', graceMs: 100 });
      await r.close();
    }
    expect({ term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') }).toEqual(before);
  });
});
