/** The fault proxy on its own, against a small upstream that counts what reaches it. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeMode, startFaultProxy, type FaultProxy } from './proxy.js';

describe('fault proxy', () => {
  let upstream: Server;
  let target: string;
  const reached: { method: string; url: string; host: string; body: string }[] = [];
  let dice = 0.99;
  let proxy: FaultProxy;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        reached.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
        res.end(`echo ${req.method} ${req.url}`);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    target = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    proxy = await startFaultProxy({ name: 'test', target, flavor: 's3', random: () => dice });
  });
  afterAll(async () => {
    await proxy?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it('passes requests through untouched, the Host header included (SigV4 signs it)', async () => {
    proxy.set({});
    const res = await fetch(`${proxy.url}/bucket/key?x=1`, { method: 'PUT', body: 'payload' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('yes');
    expect(await res.text()).toBe('echo PUT /bucket/key?x=1');
    expect(reached.at(-1)).toEqual({ method: 'PUT', url: '/bucket/key?x=1', host: new URL(proxy.url).host, body: 'payload' });
  });

  it('holds requests for the configured latency', async () => {
    proxy.set({ latencyMs: 300 });
    const t = performance.now();
    expect((await fetch(`${proxy.url}/slow`, { method: 'POST', body: 'b' })).status).toBe(200);
    expect(performance.now() - t).toBeGreaterThanOrEqual(290);
    expect(reached.at(-1)?.body).toBe('b');
  });

  it('answers 503 in the store\'s error format for the configured fraction, without reaching it', async () => {
    const before = reached.length;
    proxy.set({ errorRate: 0.5 });
    dice = 0.2;
    const res = await fetch(`${proxy.url}/bucket/key`, { method: 'PUT', body: 'x'.repeat(100_000) });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('<Code>ServiceUnavailable</Code>');
    expect(reached.length).toBe(before);
    dice = 0.7;
    expect((await fetch(`${proxy.url}/bucket/key`)).status).toBe(200);
    expect(reached.length).toBe(before + 1);
  });

  it('resets connections before the store sees the request, or after it answered', async () => {
    proxy.set({ resetRate: 0.5 });
    const before = reached.length;
    const resets = proxy.stats.resetBefore;
    // Below 0.5: reset; the second draw (below 0.5 again) says before forwarding.
    dice = 0.1;
    await expect(fetch(`${proxy.url}/a`)).rejects.toThrow();
    expect(reached.length).toBe(before);
    expect(proxy.stats.resetBefore).toBe(resets + 1);

    // Reset (0.1), after the store answered (0.9).
    const draws = [0.1, 0.9];
    let n = 0;
    const after = await startFaultProxy({ name: 'after', target, flavor: 'dynamodb', random: () => draws[n++ % draws.length]! });
    after.set({ resetRate: 0.5 });
    await expect(fetch(`${after.url}/b`, { method: 'POST', body: '{}' })).rejects.toThrow();
    // The store did the work; the answer was lost.
    expect(reached.at(-1)?.url).toBe('/b');
    expect(after.stats.resetAfter).toBe(1);
    await after.close();
  });

  it('cuts the caller off when the store is down', async () => {
    const down = await startFaultProxy({ name: 'down', target: 'http://127.0.0.1:1', flavor: 'dynamodb' });
    await expect(fetch(`${down.url}/`, { method: 'POST', body: '{}' })).rejects.toThrow();
    expect(down.stats.upstreamErrors).toBe(1);
    await down.close();
  });

  it('describes its modes', () => {
    expect(describeMode({})).toBe('pass');
    expect(describeMode({ latencyMs: 100, errorRate: 0.15, resetRate: 0.2 })).toBe('+100 ms, 503 × 15 %, reset × 20 %');
  });
});
