import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventEndpoint, on, PermanentEventError, sendEvent, toBinary, type OutgoingEvent, type ReceivedEvent } from '../src/cloudevents.js';
import { createService } from '../src/service.js';
import { EventType } from '../src/topology.js';
import { captureLogs } from './helpers.js';

const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const OTHER_TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
// Routed pipeline types get their own metric label; anything else is counted as `other`.
const PING = EventType.approved;
const PONG = EventType.thumbnailed;
const pingSchema = z.object({ n: z.number().int() });

function endpoint() {
  const logs = captureLogs('ce-test');
  const service = createService({ name: 'ce-test', logger: logs.logger });
  const seen: ReceivedEvent<unknown>[] = [];
  service.app.post(
    '/events',
    eventEndpoint(service, [
      on(PING, pingSchema, async (event) => {
        seen.push(event);
        if (event.data.n === 0) return undefined;
        if (event.data.n === 13) throw new PermanentEventError('unlucky', 'thirteen is never accepted');
        if (event.data.n === 500) throw new Error('dependency down');
        if (event.data.n === 7) return { id: `${event.id}.pong`, source: '/test/own', type: PONG, data: { n: 8 }, traceparent: OTHER_TRACE };
        return { id: `${event.id}.pong`, source: '/test/ce', type: PONG, subject: event.subject ?? 'none', time: '2030-01-02T03:04:05.000Z', data: { n: event.data.n + 1 } };
      }),
      on('com.amazonaws.s3.ObjectCreated:*', z.object({ key: z.string() }), async (event) => {
        seen.push(event);
        return undefined;
      }),
    ]),
  );
  const post = (headers: Record<string, string>, body: string) => service.app.request('/events', { method: 'POST', headers, body });
  const binary = (attrs: Record<string, string>, data: unknown, extra: Record<string, string> = {}) =>
    post(
      {
        'ce-specversion': '1.0',
        'ce-id': 'evt-1',
        'ce-source': '/test/source',
        'ce-type': PING,
        'content-type': 'application/json',
        ...Object.fromEntries(Object.entries(attrs).map(([k, v]) => [`ce-${k}`, v])),
        ...extra,
      },
      JSON.stringify(data),
    );
  const structured = (event: Record<string, unknown>, extra: Record<string, string> = {}) =>
    post({ 'content-type': 'application/cloudevents+json', ...extra }, JSON.stringify({ specversion: '1.0', ...event }));
  /** `avatarpipeline_cloudevents_handled_total` series as `type outcome` -> count. */
  const handled = async () => {
    const text = await service.metrics.registry.metrics();
    const counts = new Map<string, number>();
    for (const m of text.matchAll(/^avatarpipeline_cloudevents_handled_total\{([^}]*)\} (\d+)$/gm)) {
      const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]));
      counts.set(`${labels['type']} ${labels['outcome']}`, Number(m[2]));
    }
    return counts;
  };
  return { service, logs, seen, post, binary, structured, handled };
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('eventEndpoint', () => {
  it('exports every series it can count at 0 before the first event, so a fresh pod’s first error is an increase', async () => {
    const { service } = endpoint();
    const text = await (await service.app.request('/metrics')).text();
    const zero = (metric: string, labels: string) => expect(text, `${metric}{${labels}}`).toMatch(new RegExp(`^${metric}\\{${labels.replace(/[.*]/g, '\\$&')}\\} 0$`, 'm'));
    for (const type of [PING, 'com.amazonaws.s3.ObjectCreated:*']) {
      for (const outcome of ['reply', 'accepted', 'rejected', 'error']) zero('avatarpipeline_cloudevents_handled_total', `type="${type}",outcome="${outcome}",service="ce-test"`);
      zero('avatarpipeline_cloudevent_handling_duration_seconds_count', `service="ce-test",type="${type}"`);
    }
    zero('avatarpipeline_cloudevents_handled_total', 'type="unparsable",outcome="rejected",service="ce-test"');
    zero('avatarpipeline_cloudevents_handled_total', 'type="other",outcome="rejected",service="ce-test"');
    // Only the types it routes (and the two rejections): no series for types it never takes.
    expect(text).not.toContain(`type="${PONG}"`);
  });

  it('takes a binary-mode event and replies in binary mode with the reply attributes and data', async () => {
    const { binary, seen } = endpoint();
    const res = await binary({ subject: 'uploads/p/u', time: '2030-01-01T00:00:00Z', partitionkey: 'p' }, { n: 1 });
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-specversion')).toBe('1.0');
    expect(res.headers.get('ce-id')).toBe('evt-1.pong');
    expect(res.headers.get('ce-source')).toBe('/test/ce');
    expect(res.headers.get('ce-type')).toBe(PONG);
    expect(res.headers.get('ce-subject')).toBe('uploads/p/u');
    expect(res.headers.get('ce-time')).toBe('2030-01-02T03:04:05.000Z');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ n: 2 });
    expect(seen[0]).toMatchObject({
      id: 'evt-1',
      source: '/test/source',
      type: PING,
      subject: 'uploads/p/u',
      data: { n: 1 },
      extensions: { partitionkey: 'p' },
    });
  });

  it('takes a structured-mode event', async () => {
    const { structured, seen } = endpoint();
    const res = await structured({ id: 's-1', source: '/test/source', type: PING, datacontenttype: 'application/json', data: { n: 41 } });
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-id')).toBe('s-1.pong');
    expect(res.headers.get('ce-subject')).toBe('none');
    expect(await res.json()).toEqual({ n: 42 });
    expect(seen[0]).toMatchObject({ id: 's-1', data: { n: 41 }, subject: undefined });
  });

  it('answers 202 with no body when the handler has no reply', async () => {
    const { binary } = endpoint();
    const res = await binary({}, { n: 0 });
    expect(res.status).toBe(202);
    expect(res.headers.get('ce-type')).toBeNull();
    expect(await res.text()).toBe('');
  });

  it('routes by type prefix', async () => {
    const { binary, seen, handled } = endpoint();
    expect((await binary({ type: 'com.amazonaws.s3.ObjectCreated:Post' }, { key: 'uploads/a/b' })).status).toBe(202);
    expect((await binary({ type: 'com.amazonaws.s3.ObjectCreated:Put' }, { key: 'uploads/a/c' })).status).toBe(202);
    expect(seen.map((e) => e.type)).toEqual(['com.amazonaws.s3.ObjectCreated:Post', 'com.amazonaws.s3.ObjectCreated:Put']);
    // One bounded label for the whole family.
    expect((await handled()).get('com.amazonaws.s3.ObjectCreated:* accepted')).toBe(2);
  });

  it.each([
    ['no CloudEvent at all', { 'content-type': 'application/json' }, '{"n":1}'],
    ['binary mode without a type', { 'ce-specversion': '1.0', 'ce-id': 'x', 'ce-source': '/s', 'content-type': 'application/json' }, '{"n":1}'],
    ['binary mode without a source', { 'ce-specversion': '1.0', 'ce-id': 'x', 'ce-type': PING, 'content-type': 'application/json' }, '{"n":1}'],
    ['binary mode with broken JSON data', { 'ce-specversion': '1.0', 'ce-id': 'x', 'ce-source': '/s', 'ce-type': PING, 'content-type': 'application/json' }, '{"n":'],
    ['structured mode without an id', { 'content-type': 'application/cloudevents+json' }, JSON.stringify({ specversion: '1.0', source: '/s', type: PING, data: { n: 1 } })],
    ['structured mode without a type', { 'content-type': 'application/cloudevents+json' }, JSON.stringify({ specversion: '1.0', id: 'x', source: '/s', data: { n: 1 } })],
    ['structured mode, not JSON', { 'content-type': 'application/cloudevents+json' }, '{'],
    ['a batch', { 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify([{ specversion: '1.0', id: 'x', source: '/s', type: PING, data: { n: 1 } }])],
  ])('answers 400 invalid_event for %s, without running a handler', async (_name, headers, body) => {
    const { post, seen, handled } = endpoint();
    const res = await post(headers, body);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('invalid_event');
    expect(seen).toEqual([]);
    expect((await handled()).get('unparsable rejected')).toBe(1);
  });

  it('answers 400 for a type it does not consume', async () => {
    const { binary, handled, seen } = endpoint();
    const res = await binary({ type: 'test.unknown' }, { n: 1 });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('unsupported_event_type');
    expect(seen).toEqual([]);
    expect((await handled()).get('other rejected')).toBe(1);
  });

  it('answers 400 naming the field for invalid data', async () => {
    const { binary, handled, seen } = endpoint();
    const res = await binary({}, { n: 'one' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('invalid_event_data');
    expect(body.error.message).toMatch(/^n: /);
    expect(seen).toEqual([]);
    expect((await handled()).get(`${PING} rejected`)).toBe(1);
  });

  it('answers 422 for a permanent failure (straight to the dead-letter sink)', async () => {
    const { binary, handled, logs } = endpoint();
    const res = await binary({}, { n: 13 });
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ error: { code: 'unlucky', message: 'thirteen is never accepted' } });
    expect((await handled()).get(`${PING} rejected`)).toBe(1);
    expect(logs.entries()).toContainEqual(expect.objectContaining({ level: 'warn', code: 'unlucky', ceId: 'evt-1' }));
  });

  it('answers an opaque 500 for any other failure (retried) and logs it', async () => {
    const { binary, handled, logs } = endpoint();
    const res = await binary({}, { n: 500 });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'event_failed', message: 'event handling failed' } });
    expect(text).not.toContain('dependency down');
    expect((await handled()).get(`${PING} error`)).toBe(1);
    expect(logs.entries()).toContainEqual(
      expect.objectContaining({ level: 'error', ceId: 'evt-1', ceType: PING, err: expect.objectContaining({ message: 'dependency down' }) }),
    );
  });

  it('counts every outcome', async () => {
    const { binary, handled, service } = endpoint();
    await binary({}, { n: 1 });
    await binary({}, { n: 2 });
    await binary({}, { n: 0 });
    await binary({}, { n: 13 });
    await binary({}, { n: 500 });
    await binary({}, { n: 'x' });
    // Every other series is there too, at 0 (see above).
    expect(Object.fromEntries([...(await handled())].filter(([, count]) => count > 0))).toEqual({
      [`${PING} reply`]: 2,
      [`${PING} accepted`]: 1,
      [`${PING} rejected`]: 2,
      [`${PING} error`]: 1,
    });
    // Handler time is observed for events that reached a handler (5 of the 6).
    const durations = (await service.metrics.eventDuration.get()).values;
    expect(durations.find((v) => v.metricName === 'avatarpipeline_cloudevent_handling_duration_seconds_count' && v.labels['type'] === PING)?.value).toBe(5);
  });

  it('propagates traceparent from the event extension to the reply', async () => {
    const { binary, seen } = endpoint();
    const res = await binary({ traceparent: TRACE }, { n: 1 }, { traceparent: OTHER_TRACE });
    expect(res.headers.get('ce-traceparent')).toBe(TRACE);
    expect(seen[0]?.traceparent).toBe(TRACE);
  });

  it('propagates traceparent from the HTTP header when the event has none', async () => {
    const { structured } = endpoint();
    const res = await structured({ id: 's-2', source: '/s', type: PING, data: { n: 1 } }, { traceparent: TRACE });
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-traceparent')).toBe(TRACE);
  });

  it('keeps a trace the handler set itself, and adds none when there is none', async () => {
    const { binary } = endpoint();
    expect((await binary({ traceparent: TRACE }, { n: 7 })).headers.get('ce-traceparent')).toBe(OTHER_TRACE);
    expect((await binary({}, { n: 1 })).headers.get('ce-traceparent')).toBeNull();
  });
});

describe('sendEvent', () => {
  let server: Server;
  let sink: string;
  const received: { method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders; body: string }[] = [];
  let status = 202;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(status).end(status >= 400 ? 'nope' : '');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sink = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sink`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const event: OutgoingEvent = {
    id: 'u1.failed',
    source: '/avatar-pipeline/profile',
    type: 'avatarpipeline.avatar.failed',
    subject: 'uploads/p/u1',
    time: '2030-01-01T00:00:00.000Z',
    data: { reason: { code: 'x', message: 'y' } },
    traceparent: TRACE,
  };

  it('posts the event in binary mode', async () => {
    status = 202;
    received.length = 0;
    await sendEvent(sink, event);
    expect(received).toHaveLength(1);
    const [got] = received;
    expect(got).toMatchObject({ method: 'POST', url: '/sink' });
    expect(got?.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': 'u1.failed',
      'ce-source': '/avatar-pipeline/profile',
      'ce-type': 'avatarpipeline.avatar.failed',
      'ce-subject': 'uploads/p/u1',
      'ce-time': '2030-01-01T00:00:00.000Z',
      'ce-traceparent': TRACE,
    });
    expect(got?.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(got?.body ?? '')).toEqual(event.data);
  });

  it('sends the OIDC token a SinkBinding mounts for the broker, read afresh for every event (Knative renews it)', async () => {
    status = 202;
    received.length = 0;
    const dir = await mkdtemp(join(tmpdir(), 'ap-sink-token-'));
    const tokenFile = join(dir, 'token');
    try {
      await writeFile(tokenFile, 'token-1\n');
      await sendEvent(sink, event, { tokenFile });
      await writeFile(tokenFile, 'token-2');
      await sendEvent(sink, event, { tokenFile });
      await expect(sendEvent(sink, event, { tokenFile: join(dir, 'missing') })).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(received.map((r) => r.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('throws when the sink does not answer 2xx', async () => {
    for (const code of [400, 404, 500, 503]) {
      status = code;
      await expect(sendEvent(sink, event)).rejects.toThrow(String(code));
    }
    status = 202;
  });

  it('throws when the sink is unreachable', async () => {
    const down = createServer();
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(down.address() as AddressInfo).port}/`;
    await new Promise<void>((resolve) => down.close(() => resolve()));
    await expect(sendEvent(url, event)).rejects.toThrow();
  });

  it('round-trips through toBinary and the endpoint', async () => {
    const { post, seen } = endpoint();
    const { headers, body } = toBinary({ id: 'rt', source: '/s', type: PING, data: { n: 0 }, traceparent: TRACE });
    expect((await post(headers, body)).status).toBe(202);
    expect(seen[0]).toMatchObject({ id: 'rt', data: { n: 0 }, traceparent: TRACE });
  });
});
