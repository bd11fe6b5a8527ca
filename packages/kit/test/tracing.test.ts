/**
 * Tracing in the kit, with the real SDK exporting OTLP/HTTP JSON to an in-process receiver: the
 * server span of a request, the consumer span of an event delivery and the trace its reply
 * carries, the producer span of a sent event, fetch calls as child spans, log lines naming the
 * spans. And, in a separate process, that without an endpoint the SDK is never loaded.
 */
import { execFile } from 'node:child_process';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventEndpoint, on, sendEvent, toBinary } from '../src/cloudevents.js';
import { runService, type RunningService } from '../src/server.js';
import { createService } from '../src/service.js';
import { EventType } from '../src/topology.js';
import { startTracing } from '../src/tracing.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../src/testing.js';
import { captureLogs } from './helpers.js';

const INCOMING = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' };
const TRACEPARENT = `00-${INCOMING.traceId}-${INCOMING.spanId}-01`;
const OTHER = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
const TRACEPARENT_PATTERN = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/** One HTTP exchange; the status, headers and body of the answer. */
function call(url: string, method: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume().on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject).end(body);
  });
}

describe('tracing', () => {
  let receiver: OtlpReceiver;
  let downstream: Server;
  let downstreamUrl: string;
  /** What the downstream server (the broker a sent event goes to, an API a handler calls) saw. */
  const calls: IncomingHttpHeaders[] = [];
  let running: RunningService;
  let replyTraceparent = '';
  /** Every span the requests below made. */
  let spans: ReceivedSpan[] = [];
  const logs = captureLogs('kit-tracing');

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    downstream = createServer((req, res) => {
      calls.push(req.headers);
      req.resume().on('end', () => res.writeHead(202).end());
    });
    await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', resolve));
    downstreamUrl = `http://127.0.0.1:${(downstream.address() as AddressInfo).port}`;
    // The SDK reads its settings from the process environment, as a service's does.
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '50' });
    await startTracing('kit-tracing');

    const service = createService({ name: 'kit-tracing', logger: logs.logger });
    service.app.get('/things/:id', async (c) => {
      await fetch(`${downstreamUrl}/api`);
      return c.json({ id: c.req.param('id') });
    });
    service.app.post(
      '/events',
      eventEndpoint(service, [
        on(EventType.approved, z.object({ n: z.number() }), async (event, { log }) => {
          log.info('handling');
          await sendEvent(downstreamUrl, { id: `${event.id}.sent`, source: '/kit-tracing', type: EventType.failed, subject: 'uploads/p/u', data: {} });
          return { id: `${event.id}.reply`, source: '/kit-tracing', type: EventType.thumbnailed, data: { n: event.data.n + 1 } };
        }),
      ]),
    );
    running = await runService(service, { port: 0, hostname: '127.0.0.1', graceMs: 1000 });
    const url = `http://127.0.0.1:${running.port}`;

    // Through node:http: this process's fetch is traced too, and would send its own traceparent.
    const event = toBinary({ id: 'evt-1', source: '/test', type: EventType.approved, subject: 'uploads/p/u', data: { n: 1 }, traceparent: TRACEPARENT });
    const delivered = await call(`${url}/events`, 'POST', event.headers, event.body);
    expect(delivered.status).toBe(200);
    replyTraceparent = String(delivered.headers['ce-traceparent']);
    expect((await call(`${url}/things/42`, 'GET', { traceparent: `00-${OTHER.traceId}-${OTHER.spanId}-01` })).status).toBe(200);
    expect((await call(`${url}/healthz`, 'GET')).status).toBe(200);
    // Closing the service (runService's shutdown) flushes what is buffered.
    await running.close();
    spans = [...receiver.spans];
  });
  afterAll(async () => {
    await running?.close();
    await receiver?.close();
    await new Promise((resolve) => downstream?.close(resolve));
  });

  const one = (predicate: (span: ReceivedSpan) => boolean, what: string) => {
    const matches = spans.filter(predicate);
    expect(matches, what).toHaveLength(1);
    return matches[0]!;
  };

  it('makes a server span per request, named by its route, continuing the caller', () => {
    const span = one((s) => s.kind === 'server' && s.traceId === OTHER.traceId, 'the API request');
    expect(span).toMatchObject({ service: 'kit-tracing', name: 'GET /things/:id', parentSpanId: OTHER.spanId });
    expect(span.attributes).toEqual({ 'http.request.method': 'GET', 'http.route': '/things/:id', 'http.response.status_code': 200 });
    // A fetch in the handler is its child, and carries the trace on.
    const client = one((s) => s.kind === 'client' && s.traceId === OTHER.traceId, 'the fetch');
    expect(client.parentSpanId).toBe(span.spanId);
    expect(calls.find((h) => h['traceparent']?.includes(OTHER.traceId))?.['traceparent']).toContain(client.spanId);
    // Probes are not traced.
    expect(spans.filter((s) => s.attributes['http.route'] === '/healthz')).toEqual([]);
  });

  it('processes an event in a consumer span under the delivery, and the reply continues from it', () => {
    const server = one((s) => s.kind === 'server' && s.traceId === INCOMING.traceId, 'the delivery');
    expect(server).toMatchObject({ name: 'POST /events', parentSpanId: INCOMING.spanId });
    const consumer = one((s) => s.kind === 'consumer', 'the event');
    expect(consumer).toMatchObject({ traceId: INCOMING.traceId, parentSpanId: server.spanId, name: `process ${EventType.approved}` });
    expect(consumer.attributes).toMatchObject({ 'cloudevents.event_id': 'evt-1', 'cloudevents.event_type': EventType.approved, 'cloudevents.event_subject': 'uploads/p/u' });
    expect(replyTraceparent).toBe(`00-${INCOMING.traceId}-${consumer.spanId}-01`);
  });

  it('sends an event in a producer span whose context the event carries', () => {
    const consumer = one((s) => s.kind === 'consumer', 'the event');
    const producer = one((s) => s.kind === 'producer', 'the sent event');
    expect(producer).toMatchObject({ traceId: INCOMING.traceId, parentSpanId: consumer.spanId, name: `send ${EventType.failed}` });
    const sent = calls.find((h) => h['ce-id'] === 'evt-1.sent');
    expect(sent?.['ce-traceparent']).toBe(`00-${INCOMING.traceId}-${producer.spanId}-01`);
    // The POST itself is the producer's child (undici), and says so in its own header.
    const post = one((s) => s.kind === 'client' && s.parentSpanId === producer.spanId, 'the POST to the sink');
    expect(sent?.['traceparent']).toMatch(TRACEPARENT_PATTERN);
    expect(sent?.['traceparent']).toContain(post.spanId);
  });

  it('names the spans in the log lines', () => {
    const consumer = one((s) => s.kind === 'consumer', 'the event');
    const server = one((s) => s.kind === 'server' && s.traceId === INCOMING.traceId, 'the delivery');
    const entries = logs.entries();
    expect(entries.find((l) => l['msg'] === 'handling')).toMatchObject({ trace_id: INCOMING.traceId, span_id: consumer.spanId, ceId: 'evt-1' });
    expect(entries.find((l) => l['msg'] === 'request' && l['route'] === '/events')).toMatchObject({ trace_id: INCOMING.traceId, span_id: server.spanId });
    expect(entries.some((l) => 'traceparent' in l)).toBe(false);
  });
});

const kitDir = fileURLToPath(new URL('..', import.meta.url));

/**
 * Starts the built kit's `main()` in a fresh process with `env`, recording every module the
 * process loads; returns whether tracing runs and the OpenTelemetry modules loaded.
 */
async function probe(env: Record<string, string>): Promise<{ tracing: boolean; opentelemetry: string[] }> {
  const hooks = `
    let port;
    export function initialize(data) { port = data.port; }
    export async function resolve(specifier, context, next) {
      const resolved = await next(specifier, context);
      port.postMessage(resolved.url);
      return resolved;
    }`;
  const program = `
    import { createRequire, register } from 'node:module';
    import { MessageChannel } from 'node:worker_threads';
    const { port1, port2 } = new MessageChannel();
    const loaded = [];
    port1.on('message', (url) => loaded.push(url));
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), import.meta.url, { data: { port: port2 }, transferList: [port2] });
    const { main } = await import('@avatar-pipeline/kit/server');
    const { tracing, stopTracing } = await import('@avatar-pipeline/kit/tracing');
    main(async () => {
      const running = tracing() !== undefined;
      await stopTracing();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const required = Object.keys(createRequire(import.meta.url).cache);
      // The API alone is always there: prom-client's process metrics load it (for exemplars).
      const opentelemetry = [...loaded, ...required].filter((url) => url.includes('@opentelemetry/') && !url.includes('@opentelemetry/api/'));
      process.stdout.write(JSON.stringify({ tracing: running, opentelemetry }));
      process.exit(0);
    }, { tracing: 'probe' });`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', program], {
    cwd: kitDir,
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  return JSON.parse(stdout) as { tracing: boolean; opentelemetry: string[] };
}

describe('tracing off', () => {
  it('loads no OpenTelemetry module without an OTLP endpoint, and the SDK with one', async () => {
    expect(await probe({})).toEqual({ tracing: false, opentelemetry: [] });
    const on = await probe({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:9/v1/traces' });
    expect(on.tracing).toBe(true);
    expect(on.opentelemetry.some((url) => url.includes('@opentelemetry/sdk-node'))).toBe(true);
  });

  it('stops a service whose tracing settings are wrong with one line', async () => {
    await expect(probe({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).rejects.toMatchObject({
      code: 1,
      stderr: 'invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http(s) URL\n',
    });
  });
});
