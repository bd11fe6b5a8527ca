import { CloudEvent } from 'cloudevents';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toBinary } from '@avatar-pipeline/kit/cloudevents';
import { HttpError } from '@avatar-pipeline/kit/errors';
import type { Filter } from '@avatar-pipeline/kit/filters';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { EventType, S3_OBJECT_CREATED_PREFIX, deliveryBudget, deliveryPolicies, eventAudience, triggers as topology, type DeliveryPolicy, type RetryPolicy, type ServiceName, type TriggerSpec } from '@avatar-pipeline/kit/topology';
import { backoffMs, createBroker, createDevIssuer, isRetryable, type Broker, type BrokerOptions } from '../src/index.js';
import { accept, replyWith, startSubscriber, type Received, type Responder, type Subscriber } from './support/subscriber.js';

const logger = createLogger('broker-test', 'silent');

/**
 * The topology's policies span minutes (deliveryBudget); every harness runs them a thousand times
 * faster, so e.g. processing's 8 retries take about half a second. Semantics are unchanged: the
 * same attempts, timeouts and relative delays.
 */
const SCALE = 0.001;

/** Services that subscribe or sink events in these tests; profile is also the dead-letter sink. */
const services = ['moderate', 'thumbnail', 'profile', 'push'] as const satisfies readonly ServiceName[];
type TestService = (typeof services)[number];

const fast: DeliveryPolicy = {
  retry: 3,
  backoffPolicy: 'exponential',
  backoffDelay: 'PT0.01S',
  timeout: 'PT5S',
  deadLetter: { service: 'profile', path: '/dead-letter' },
};

function trigger(name: string, filter: Filter, service: ServiceName, delivery: Partial<DeliveryPolicy> = {}): TriggerSpec {
  return { name, filters: [filter], subscriber: { service, path: '/events' }, delivery: { ...fast, ...delivery } };
}

interface Harness {
  broker: Broker;
  subs: Record<TestService, Subscriber>;
  /** Requests a service got on one path. */
  at(service: TestService, path?: string): Received[];
  post(path: string, init: { headers: Record<string, string>; body: string }): Promise<Response>;
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

async function harness(
  responders: Partial<Record<TestService, Responder>> = {},
  options: Partial<BrokerOptions> = {},
): Promise<Harness> {
  const subs = {} as Record<TestService, Subscriber>;
  for (const name of services) {
    subs[name] = await startSubscriber(responders[name] ?? accept);
    open.push(() => subs[name].close());
  }
  const broker = createBroker({
    triggers: topology,
    resolve: (d) => subs[d.service as TestService]?.url,
    logger,
    backoffScale: SCALE,
    ...options,
  });
  open.push(() => broker.close());
  return {
    broker,
    subs,
    at: (service, path = '/events') => subs[service].received.filter((r) => r.path === path),
    post: async (path, init) => broker.service.app.request(path, { method: 'POST', ...init }),
    async metric(name, labels = {}) {
      const text = await (await broker.service.app.request('/metrics')).text();
      const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    },
  };
}

function uploadEvent(key: string, extra: Record<string, unknown> = {}) {
  return new CloudEvent<unknown>({
    specversion: '1.0',
    id: 'REQ123.HOST456',
    source: 'aws:s3.us-east-1.avatars',
    type: `${S3_OBJECT_CREATED_PREFIX}Post`,
    subject: key,
    time: '2026-01-02T03:04:05.678Z',
    datacontenttype: 'application/json',
    data: { s3SchemaVersion: '1.0', bucket: { name: 'avatars' }, object: { key, size: 1234, eTag: 'abc' } },
    ...extra,
  });
}

function simpleEvent(type: string, id = 'evt-1', extra: Record<string, unknown> = {}) {
  return new CloudEvent<unknown>({ specversion: '1.0', id, source: '/test', type, datacontenttype: 'application/json', data: { n: 1 }, ...extra });
}

const structured = (event: CloudEvent<unknown>) => ({
  headers: { 'content-type': 'application/cloudevents+json' },
  body: JSON.stringify(event),
});

const decode = (b64: string | undefined) => Buffer.from(b64 ?? '', 'base64').toString('utf8');

describe('local broker: routing', () => {
  it('routes by exact and prefix filters as the topology says', async () => {
    const h = await harness();
    const upload = await h.post('/avatar-pipeline/default', structured(uploadEvent('uploads/player-1/0190a0b0-0000-7000-8000-000000000001')));
    expect(upload.status).toBe(202);
    const avatar = await h.post('/avatar-pipeline/default', structured(uploadEvent('avatars/player-1/x/64.webp')));
    expect(avatar.status).toBe(202);
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(1);
    expect(h.at('moderate')[0]?.event?.subject).toBe('uploads/player-1/0190a0b0-0000-7000-8000-000000000001');
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'http', outcome: 'dropped_no_trigger' })).toBe(1);

    expect(h.broker.ingest(simpleEvent(EventType.approved))).toEqual(['thumbnail-approved']);
    await h.broker.idle();
    expect(h.at('thumbnail')).toHaveLength(1);
    expect(h.at('moderate')).toHaveLength(1);
    for (const s of ['profile', 'push'] as const) expect(h.subs[s].received).toHaveLength(0);
  });

  it('delivers in binary mode with every attribute, extension and the data intact', async () => {
    const h = await harness();
    const event = uploadEvent('uploads/p/u', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', partitionkey: 'p' });
    expect((await h.post('/', structured(event))).status).toBe(202);
    await h.broker.idle();
    const [got] = h.at('moderate');
    expect(got?.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': 'REQ123.HOST456',
      'ce-source': 'aws:s3.us-east-1.avatars',
      'ce-type': 'com.amazonaws.s3.ObjectCreated:Post',
      'ce-subject': 'uploads/p/u',
      'ce-time': '2026-01-02T03:04:05.678Z',
      'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'ce-partitionkey': 'p',
      'content-type': 'application/json',
      prefer: 'reply',
    });
    expect(JSON.parse(got?.body ?? '')).toEqual(event.data);
    // Knative stamps the arrival time and strips its hop counter before delivery.
    expect(Date.parse(got?.headers['ce-knativearrivaltime'] ?? '')).not.toBeNaN();
    expect(got?.headers['ce-knativebrokerttl']).toBeUndefined();
  });

  it('accepts binary-mode ingress too', async () => {
    const h = await harness();
    const { headers, body } = toBinary({ id: 'a1', source: '/avatar-pipeline/moderate', type: EventType.approved, subject: 'uploads/p/u', data: { ok: true } });
    expect((await h.post('/default/default', { headers, body })).status).toBe(202);
    await h.broker.idle();
    expect(h.at('thumbnail')[0]?.event?.data).toEqual({ ok: true });
  });

  it('refuses a trigger whose filters Knative would refuse, as the cluster would', () => {
    const twoAttributes: Filter = { prefix: { type: S3_OBJECT_CREATED_PREFIX, subject: 'uploads/' } };
    expect(() => createBroker({ triggers: [trigger('moderate-uploads', twoAttributes, 'moderate')], resolve: () => undefined, logger })).toThrow(
      'Trigger moderate-uploads: Multiple items found, can have only one key-value: spec.filters[0].prefix',
    );
    expect(() => createBroker({ triggers: [trigger('t', { exact: { 'ce-type': 't' } }, 'moderate')], resolve: () => undefined, logger })).toThrow(
      'Trigger t: invalid key name "ce-type": spec.filters[0].exact[ce-type]',
    );
  });

  it('answers 400 JSON to anything that is not a valid CloudEvent', async () => {
    const h = await harness();
    const cases = [
      { headers: { 'content-type': 'application/json' }, body: '{"hello":"world"}' },
      { headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-type': 't', 'ce-source': '/s' }, body: '{}' },
      { headers: { 'content-type': 'application/cloudevents+json' }, body: '{"specversion":"1.0","id":"x","type":"t"}' },
      { headers: { 'content-type': 'application/cloudevents+json' }, body: '{not json' },
    ];
    for (const init of cases) {
      const res = await h.post('/', init);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_event');
    }
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'http', outcome: 'invalid' })).toBe(cases.length);
    expect(() => h.broker.ingest(new CloudEvent({ specversion: '1.0', id: 'x', source: '', type: 't' }, false))).toThrow(HttpError);
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'http', outcome: 'invalid' })).toBe(cases.length + 1);
  });
});

describe('local broker: replies', () => {
  it('ingests a reply (binary or structured) so the next trigger gets it', async () => {
    const chain = [
      trigger('a', { exact: { type: 'test.a' } }, 'moderate'),
      trigger('b', { exact: { type: 'test.b' } }, 'thumbnail'),
      trigger('c', { exact: { type: 'test.c' } }, 'push'),
    ];
    const h = await harness(
      {
        moderate: (r) => replyWith({ id: `${r.event?.id}.b`, source: '/avatar-pipeline/moderate', type: 'test.b', subject: 'uploads/p/u', data: { step: 'b' } }),
        thumbnail: (r) => ({
          status: 200,
          headers: { 'content-type': 'application/cloudevents+json' },
          body: JSON.stringify({ specversion: '1.0', id: `${r.event?.id}.c`, source: '/avatar-pipeline/thumbnail', type: 'test.c', data: { step: 'c' } }),
        }),
      },
      { triggers: chain },
    );
    h.broker.ingest(simpleEvent('test.a', 'u1'));
    await h.broker.idle();
    expect(h.at('thumbnail').map((r) => [r.event?.id, r.event?.data])).toEqual([['u1.b', { step: 'b' }]]);
    expect(h.at('push').map((r) => [r.event?.id, r.event?.data])).toEqual([['u1.b.c', { step: 'c' }]]);
    expect(h.at('thumbnail')[0]?.headers['ce-knativebrokerttl']).toBeUndefined();
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'reply', outcome: 'routed' })).toBe(2);
    expect(h.at('profile', '/dead-letter')).toHaveLength(0);
  });

  it('refuses replies once the hop counter is spent, dead-lettering the event that looped', async () => {
    const loop = [trigger('loop', { exact: { type: 'test.loop' } }, 'moderate')];
    const h = await harness(
      { moderate: (r) => replyWith({ id: `${r.event?.id}+`, source: '/loop', type: 'test.loop', data: {} }) },
      { triggers: loop, address: 'http://broker.test/default/default' },
    );
    // 4 hops left on arrival: accepted with 3, then replies with 2 and 1; the next reply is refused.
    h.broker.ingest(simpleEvent('test.loop', 'l', { knativebrokerttl: 4 }));
    await h.broker.idle();
    expect(h.at('moderate').map((r) => r.event?.id)).toEqual(['l', 'l+', 'l++']);
    const [dead] = h.at('profile', '/dead-letter');
    expect(dead?.event?.id).toBe('l++');
    expect(dead?.headers).toMatchObject({ 'ce-knativeerrorcode': '400', 'ce-knativeerrordest': 'http://broker.test/default/default' });

    const res = await h.post('/', structured(simpleEvent('test.loop', 'm', { knativebrokerttl: 1 })));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ttl_exceeded');
  });
});

describe('local broker: retries and dead letters', () => {
  const one = [trigger('t', { exact: { type: 'test.t' } }, 'moderate')];

  it('retries retryable answers until one succeeds', async () => {
    const h = await harness({ moderate: (_r, n) => ({ status: n < 2 ? 503 : 200 }) }, { triggers: one });
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('moderate').map((r) => r.event?.id)).toEqual(['evt-1', 'evt-1', 'evt-1']);
    expect(h.at('profile', '/dead-letter')).toHaveLength(0);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'delivered' })).toBe(1);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'retried' })).toBe(2);
  });

  it.each([404, 408, 409, 429, 500, 503])('retries %i', async (status) => {
    const h = await harness({ moderate: (_r, n) => ({ status: n === 0 ? status : 202 }) }, { triggers: one });
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(2);
  });

  it('dead-letters after 1 + retry attempts, with the knativeerror* extensions', async () => {
    const failure = JSON.stringify({ error: { code: 'event_failed', message: 'event handling failed' } });
    const h = await harness({ moderate: () => ({ status: 500, headers: { 'content-type': 'application/json' }, body: failure }) }, { triggers: one });
    const event = simpleEvent('test.t', 'dl-1', { subject: 'uploads/p/u' });
    h.broker.ingest(event);
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(1 + fast.retry);
    const dead = h.at('profile', '/dead-letter');
    expect(dead).toHaveLength(1);
    const [got] = dead;
    expect(got?.event).toMatchObject({ id: 'dl-1', type: 'test.t', source: '/test', subject: 'uploads/p/u', data: { n: 1 } });
    expect(got?.headers['ce-knativeerrordest']).toBe(`${h.subs.moderate.url}/events`);
    expect(got?.headers['ce-knativeerrorcode']).toBe('500');
    expect(decode(got?.headers['ce-knativeerrordata'])).toBe(failure);
    // The sink is not asked for a reply.
    expect(got?.headers.prefer).toBeUndefined();
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'dead_lettered' })).toBe(1);
  });

  it('ignores what the dead-letter sink answers: Knative forwards no reply from it', async () => {
    const h = await harness(
      {
        moderate: () => ({ status: 500 }),
        profile: (r) => replyWith({ id: `${r.event?.id}.failed`, source: '/avatar-pipeline/profile', type: EventType.failed, data: {} }),
      },
      { triggers: [...one, trigger('push-failed', { exact: { type: EventType.failed } }, 'push')] },
    );
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('profile', '/dead-letter')).toHaveLength(1);
    expect(h.subs.push.received).toHaveLength(0);
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'reply', outcome: 'routed' })).toBe(0);
  });

  it.each([400, 422])('sends a non-retryable %i to the dead-letter sink after one attempt', async (status) => {
    const h = await harness({ moderate: () => ({ status, body: 'nope' }) }, { triggers: one });
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(1);
    expect(h.at('profile', '/dead-letter')[0]?.headers).toMatchObject({ 'ce-knativeerrorcode': String(status), 'ce-knativeerrordata': Buffer.from('nope').toString('base64') });
  });

  it('truncates knativeerrordata to 1024 base64 characters', async () => {
    const h = await harness({ moderate: () => ({ status: 400, body: 'x'.repeat(5000) }) }, { triggers: one });
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('profile', '/dead-letter')[0]?.headers['ce-knativeerrordata']).toHaveLength(1024);
  });

  it('takes a 2xx without a body as success, but a non-CloudEvent body as a failed delivery (as Knative does)', async () => {
    const h = await harness(
      {
        moderate: (_r, n) => (n === 0 ? { status: 200 } : { status: 202 }),
        thumbnail: () => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' }),
      },
      { triggers: [...one, trigger('u', { exact: { type: 'test.u' } }, 'thumbnail', { retry: 1 })] },
    );
    h.broker.ingest(simpleEvent('test.t', 'e1'));
    h.broker.ingest(simpleEvent('test.t', 'e2'));
    h.broker.ingest(simpleEvent('test.u', 'e3'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(2);
    expect(h.at('thumbnail')).toHaveLength(2);
    const dead = h.at('profile', '/dead-letter');
    expect(dead.map((r) => r.event?.id)).toEqual(['e3']);
    // Knative's filter answers 502 without error details here.
    expect(dead[0]?.headers['ce-knativeerrorcode']).toBeUndefined();
  });

  it('retries a timed-out attempt and dead-letters without error extensions, as Knative does', async () => {
    const h = await harness({ moderate: () => ({ status: 202, delayMs: 400 }) }, {
      triggers: [trigger('slow', { exact: { type: 'test.t' } }, 'moderate', { timeout: 'PT0.1S', retry: 1 })],
    });
    h.broker.ingest(simpleEvent('test.t'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(2);
    const [dead] = h.at('profile', '/dead-letter');
    expect(dead?.event?.id).toBe('evt-1');
    expect(dead?.headers['ce-knativeerrorcode']).toBeUndefined();
  });

  it('retries an unreachable subscriber and records a dispatch error', async () => {
    const h = await harness({}, { triggers: [trigger('gone', { exact: { type: 'test.t' } }, 'moderate', { retry: 1 })] });
    const reachable = h.subs.profile.url;
    const broker = createBroker({
      triggers: [trigger('gone', { exact: { type: 'test.t' } }, 'moderate', { retry: 1 })],
      resolve: (d) => (d.service === 'moderate' ? 'http://127.0.0.1:1' : reachable),
      logger,
      backoffScale: SCALE,
    });
    open.push(() => broker.close());
    broker.ingest(simpleEvent('test.t'));
    await broker.idle();
    const [dead] = h.at('profile', '/dead-letter');
    expect(dead?.headers['ce-knativeerrorcode']).toBe('500');
    expect(dead?.headers['ce-knativeerrordest']).toBe('http://127.0.0.1:1/events');
    expect(decode(dead?.headers['ce-knativeerrordata'])).toMatch(/^dispatch error: Post "http:\/\/127\.0\.0\.1:1\/events": /);
  });

  it('finds a service that had no address at the first attempt on a retry', async () => {
    let calls = 0;
    const h = await harness({}, { triggers: one });
    const broker = createBroker({
      triggers: one,
      resolve: (d) => (d.service === 'moderate' && calls++ === 0 ? undefined : h.subs[d.service as TestService].url),
      logger,
      backoffScale: SCALE,
    });
    open.push(() => broker.close());
    broker.ingest(simpleEvent('test.t'));
    await broker.idle();
    expect(h.at('moderate')).toHaveLength(1);
    expect(h.at('profile', '/dead-letter')).toHaveLength(0);
  });

  it("retries a dead-letter sink that is down on the dead-letter policy, not the trigger's, until it takes the event", async () => {
    const deadLetters: RetryPolicy = { retry: 6, backoffPolicy: 'exponential', backoffDelay: 'PT0.01S', timeout: 'PT5S' };
    const h = await harness({ moderate: () => ({ status: 503 }), profile: (_r, n) => ({ status: n < 4 ? 503 : 202 }) }, {
      // One attempt at the subscriber: on the trigger's policy the sink would get one too.
      triggers: [trigger('t', { exact: { type: 'test.t' } }, 'moderate', { retry: 0 })],
      deadLetterDelivery: deadLetters,
    });
    h.broker.ingest(simpleEvent('test.t', 'late-sink'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(1);
    const dead = h.at('profile', '/dead-letter');
    expect(dead.map((r) => r.event?.id)).toEqual(Array(5).fill('late-sink'));
    // Every redelivery carries the same error extensions.
    for (const r of dead) expect(r.headers['ce-knativeerrorcode']).toBe('503');
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'dead_letter_retried' })).toBe(4);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'dead_lettered' })).toBe(1);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'undeliverable' })).toBe(0);
    expect(await h.metric('avatarpipeline_broker_undeliverable_events')).toBe(0);
  });

  it("uses the topology's dead-letter policy by default: minutes, not the seconds of a trigger's first retries", () => {
    const budget = deliveryBudget(deliveryPolicies.deadLetters);
    expect(budget.backoffMs).toBeGreaterThanOrEqual(10 * 60_000);
    expect(budget.attempts).toBe(1 + deliveryPolicies.deadLetters.retry);
  });

  it('keeps an event the dead-letter sink refuses for its whole budget, logs it as an error, counts it and lists it', async () => {
    const lines: Record<string, unknown>[] = [];
    const captured = createLogger('broker-test', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const h = await harness({ moderate: () => ({ status: 400, body: 'bad' }), profile: () => ({ status: 503 }) }, {
      triggers: [trigger('t', { exact: { type: 'test.t' } }, 'moderate', { retry: 2 })],
      logger: captured,
      // The default dead-letter policy (about 34 min of retries) in about 0.2 s.
      backoffScale: 0.0001,
    });
    h.broker.ingest(simpleEvent('test.t', 'keep-me'));
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(1);
    expect(h.at('profile', '/dead-letter')).toHaveLength(1 + deliveryPolicies.deadLetters.retry);
    const res = await h.broker.service.app.request('/_broker/undeliverable');
    expect(res.status).toBe(200);
    const list = (await res.json()) as { count: number; events: { trigger: string; reason: string; status: number; attempts: number; event: Record<string, unknown> }[] };
    expect(list.count).toBe(1);
    expect(list.events[0]).toMatchObject({ trigger: 't', reason: 'dead_letter_failed', status: 503, attempts: 1 + deliveryPolicies.deadLetters.retry });
    expect(list.events[0]?.event).toMatchObject({ id: 'keep-me', type: 'test.t', data: { n: 1 }, knativeerrorcode: 400 });
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'undeliverable' })).toBe(1);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 't', outcome: 'dead_letter_retried' })).toBe(deliveryPolicies.deadLetters.retry);
    expect(await h.metric('avatarpipeline_broker_undeliverable_events')).toBe(1);
    const given = lines.filter((l) => l['level'] === 'error' && l['ceId'] === 'keep-me');
    expect(given.map((l) => l['msg'])).toEqual(['event undeliverable: kept in memory, see GET /_broker/undeliverable']);
    expect(given[0]).toMatchObject({ reason: 'dead_letter_failed', attempts: 1 + deliveryPolicies.deadLetters.retry, trigger: 't' });
  });

  it('lets other events through while a dead letter waits for its sink, and parks it at close', async () => {
    const h = await harness({ moderate: () => ({ status: 400 }), profile: () => ({ status: 503 }) }, {
      triggers: [trigger('t', { exact: { type: 'test.t' } }, 'moderate', { retry: 0 }), trigger('u', { exact: { type: 'test.u' } }, 'thumbnail')],
      // Real time: the sink's second attempt is a minute away.
      deadLetterDelivery: { retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT60S', timeout: 'PT5S' },
      backoffScale: 1,
      concurrency: 1,
    });
    h.broker.ingest(simpleEvent('test.t', 'waiting'));
    await vi.waitFor(() => expect(h.at('profile', '/dead-letter')).toHaveLength(1));
    for (let i = 0; i < 3; i++) h.broker.ingest(simpleEvent('test.u', `u${i}`));
    await vi.waitFor(() => expect(h.at('thumbnail')).toHaveLength(3));
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 'u', outcome: 'delivered' })).toBe(3);
    expect(await h.metric('avatarpipeline_broker_pending_deliveries')).toBe(1);
    await h.broker.close();
    const list = (await (await h.broker.service.app.request('/_broker/undeliverable')).json()) as { events: { reason: string; event: { id: string } }[] };
    expect(list.events.map((e) => [e.reason, e.event.id])).toEqual([['broker_closed', 'waiting']]);
  });
});

describe('local broker: OIDC delivery tokens (Knative authentication-oidc)', () => {
  it("signs every attempt, dead letters included, with the dev issuer for the audience of the service it goes to", async () => {
    const issuer = await createDevIssuer({ issuer: 'http://localhost:8080', audience: 'avatar-pipeline', logger });
    const audienceOf = (service: ServiceName) => eventAudience('avatar-pipeline', service);
    const h = await harness({ thumbnail: (_r, n) => ({ status: n === 0 ? 503 : 500 }) }, { token: (d) => issuer.mintFor(audienceOf(d.service), 'local-broker') });
    h.broker.ingest(simpleEvent(EventType.approved));
    await h.broker.idle();
    const keys = createLocalJWKSet({ keys: [issuer.publicJwk] });
    const verify = (r: Received, service: ServiceName) =>
      jwtVerify(/^Bearer (.+)$/.exec(r.headers['authorization'] ?? '')?.[1] ?? '', keys, { issuer: 'http://localhost:8080', audience: audienceOf(service), requiredClaims: ['exp'] });
    const attempts = h.at('thumbnail');
    expect(attempts).toHaveLength(1 + deliveryPolicies.processing.retry);
    for (const attempt of attempts) await expect(verify(attempt, 'thumbnail')).resolves.toBeTruthy();
    const [dead] = h.at('profile', '/dead-letter');
    await expect(verify(dead!, 'profile')).resolves.toBeTruthy();
    // Each token names one service: thumbnail's would not open profile's endpoints.
    await expect(verify(attempts[0]!, 'profile')).rejects.toThrow(/aud/);
  });
});

describe('local broker: operations', () => {
  it('exposes its metrics', async () => {
    const h = await harness();
    h.broker.ingest(uploadEvent('uploads/p/u'));
    await h.broker.idle();
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 'moderate-uploads', outcome: 'delivered' })).toBe(1);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 'push-failed', outcome: 'dead_lettered' })).toBe(0);
    expect(await h.metric('avatarpipeline_broker_delivery_duration_seconds_count', { trigger: 'moderate-uploads' })).toBe(1);
    // Arrival to the first attempt's dispatch (Knative's event_processing_latencies), once per event and trigger.
    expect(await h.metric('avatarpipeline_broker_event_processing_seconds_count', { trigger: 'moderate-uploads' })).toBe(1);
    expect(await h.metric('avatarpipeline_broker_pending_deliveries')).toBe(0);
    expect(await h.metric('avatarpipeline_broker_events_ingested_total', { origin: 'http', outcome: 'routed' })).toBe(1);
  });

  it('bounds the attempts in flight', async () => {
    const h = await harness({ moderate: () => ({ status: 202, delayMs: 50 }) }, {
      triggers: [trigger('t', { exact: { type: 'test.t' } }, 'moderate')],
      concurrency: 2,
    });
    for (let i = 0; i < 6; i++) h.broker.ingest(simpleEvent('test.t', `c${i}`));
    expect(await h.metric('avatarpipeline_broker_pending_deliveries')).toBe(6);
    await h.broker.idle();
    expect(h.at('moderate')).toHaveLength(6);
    expect(h.subs.moderate.maxConcurrent).toBe(2);
  });

  it('closes gracefully: attempts in flight finish, waiting retries are kept, new events are refused', async () => {
    const h = await harness(
      { moderate: () => ({ status: 202, delayMs: 150 }), thumbnail: () => ({ status: 503 }) },
      {
        triggers: [
          trigger('slow', { exact: { type: 'test.slow' } }, 'moderate'),
          trigger('failing', { exact: { type: 'test.fail' } }, 'thumbnail', { backoffDelay: 'PT60S' }),
        ],
        backoffScale: 1,
      },
    );
    h.broker.ingest(simpleEvent('test.slow', 's'));
    h.broker.ingest(simpleEvent('test.fail', 'f'));
    await vi.waitFor(() => expect(h.at('thumbnail')).toHaveLength(1));
    const started = Date.now();
    await h.broker.close();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await h.metric('avatarpipeline_broker_deliveries_total', { trigger: 'slow', outcome: 'delivered' })).toBe(1);
    const list = (await (await h.broker.service.app.request('/_broker/undeliverable')).json()) as { events: { trigger: string; reason: string; event: { id: string } }[] };
    expect(list.events.map((e) => [e.trigger, e.reason, e.event.id])).toEqual([['failing', 'broker_closed', 'f']]);
    expect(() => h.broker.ingest(simpleEvent('test.slow'))).toThrow(HttpError);
    expect((await h.post('/', structured(simpleEvent('test.slow')))).status).toBe(503);
    expect((await h.broker.service.app.request('/readyz')).status).toBe(503);
  });
});

describe('local broker: Knative retry policy', () => {
  const policy = (backoffPolicy: DeliveryPolicy['backoffPolicy']): DeliveryPolicy => ({ ...fast, backoffPolicy, backoffDelay: 'PT0.5S' });

  it('waits delay * 2^n (exponential) or delay * n (linear) before retry n', () => {
    expect([0, 1, 2, 3].map((n) => backoffMs(policy('exponential'), n))).toEqual([500, 1000, 2000, 4000]);
    expect([0, 1, 2, 3].map((n) => backoffMs(policy('linear'), n))).toEqual([0, 500, 1000, 1500]);
  });

  it('waits in real time unless told otherwise (npm start runs the real budgets)', async () => {
    const triggers = [trigger('t', { exact: { type: 'test.t' } }, 'moderate', { backoffDelay: 'PT0.3S' })];
    const h = await harness({ moderate: (_r, n) => ({ status: n === 0 ? 503 : 202 }) }, { triggers });
    const broker = createBroker({ triggers, resolve: (d) => h.subs[d.service as TestService].url, logger });
    open.push(() => broker.close());
    const started = Date.now();
    broker.ingest(simpleEvent('test.t'));
    await broker.idle();
    expect(h.at('moderate')).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('retries 5xx, 404, 408, 409 and 429 only', () => {
    const retried = [200, 202, 301, 400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504].filter(isRetryable);
    expect(retried).toEqual([404, 408, 409, 429, 500, 502, 503, 504]);
  });
});
