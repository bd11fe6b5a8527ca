import { describe, expect, it } from 'vitest';
import {
  deadLetterSink,
  durationMs,
  emits,
  EventType,
  eventDataSchemas,
  eventTypeLabel,
  matchesFilter,
  publicServices,
  S3_OBJECT_CREATED_PREFIX,
  serviceNames,
  triggers,
} from '../src/index.js';

describe('matchesFilter', () => {
  it('matches exact attributes exactly, case-sensitively', () => {
    const filter = { exact: { type: EventType.approved } };
    expect(matchesFilter(filter, { type: EventType.approved, source: '/x' })).toBe(true);
    expect(matchesFilter(filter, { type: `${EventType.approved}.v2` })).toBe(false);
    expect(matchesFilter(filter, { type: EventType.approved.toUpperCase() })).toBe(false);
    expect(matchesFilter(filter, { type: EventType.approved.slice(0, -1) })).toBe(false);
  });

  it('matches prefixes', () => {
    const filter = { prefix: { type: S3_OBJECT_CREATED_PREFIX, subject: 'uploads/' } };
    expect(matchesFilter(filter, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'uploads/p/u' })).toBe(true);
    expect(matchesFilter(filter, { type: `${S3_OBJECT_CREATED_PREFIX}Put`, subject: 'uploads/' })).toBe(true);
    expect(matchesFilter(filter, { type: 'com.amazonaws.s3.ObjectRemoved:Delete', subject: 'uploads/p/u' })).toBe(false);
    expect(matchesFilter(filter, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'avatars/p/u/64.webp' })).toBe(false);
    expect(matchesFilter(filter, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'x/uploads/p/u' })).toBe(false);
  });

  it('requires every attribute of both dialects, and a missing attribute never matches', () => {
    const filter = { exact: { type: EventType.ready, source: '/avatar-pipeline/profile' }, prefix: { subject: 'uploads/' } };
    const event = { type: EventType.ready, source: '/avatar-pipeline/profile', subject: 'uploads/p/u' };
    expect(matchesFilter(filter, event)).toBe(true);
    expect(matchesFilter(filter, { ...event, source: '/elsewhere' })).toBe(false);
    expect(matchesFilter(filter, { ...event, subject: 'other' })).toBe(false);
    expect(matchesFilter(filter, { type: event.type, source: event.source })).toBe(false);
    expect(matchesFilter({ exact: { subject: '' } }, {})).toBe(false);
    expect(matchesFilter({ prefix: { subject: '' } }, { subject: null })).toBe(false);
  });

  it('lets everything through an empty filter, and compares extension values as strings', () => {
    expect(matchesFilter({}, {})).toBe(true);
    expect(matchesFilter({ exact: {}, prefix: {} }, { type: 'anything' })).toBe(true);
    expect(matchesFilter({ exact: { attempt: '3' } }, { attempt: 3 })).toBe(true);
  });
});

describe('durationMs', () => {
  it.each([
    ['PT0.5S', 500],
    ['PT0.2S', 200],
    ['PT60S', 60_000],
    ['PT1M30S', 90_000],
    ['PT2H', 7_200_000],
    ['P1D', 86_400_000],
    ['P1DT1H1M1.25S', 90_061_250],
    ['PT0S', 0],
  ])('reads %s as %d ms', (iso, ms) => {
    expect(durationMs(iso)).toBe(ms);
  });

  it.each(['', 'P', 'PT', 'P1DT', '5s', 'PT-1S', 'PT1.5M', 'P1W', 'pt1s', 'PT1S ', 'P1Y'])('rejects %j', (iso) => {
    expect(() => durationMs(iso)).toThrow(/not an ISO 8601 duration/);
  });
});

describe('topology invariants', () => {
  const known = new Set<string>(serviceNames);
  const domainTypes = new Set<string>(Object.values(EventType));
  /** A concrete event of each emitted type (a trailing `*` stands for a family). */
  const example = (type: string) =>
    type.endsWith('*') ? { type: `${type.slice(0, -1)}Post`, subject: 'uploads/p/u' } : { type, subject: 'uploads/p/u' };

  it('names only known services as subscribers and dead-letter sinks', () => {
    for (const trigger of triggers) {
      expect(known.has(trigger.subscriber.service), trigger.name).toBe(true);
      expect(known.has(trigger.delivery.deadLetter.service), trigger.name).toBe(true);
      expect(trigger.subscriber.path).toMatch(/^\/[a-z-]*$/);
      expect(trigger.delivery.deadLetter.path).toMatch(/^\/[a-z-]*$/);
    }
    expect(known.has(deadLetterSink.service)).toBe(true);
    for (const name of publicServices) expect(known.has(name)).toBe(true);
    expect(Object.keys(emits).sort()).toEqual([...serviceNames].sort());
  });

  it('gives every emitted event type at least one consumer', () => {
    for (const [service, types] of Object.entries(emits)) {
      for (const type of types) {
        const consumers = triggers.filter((t) => matchesFilter(t.filter, example(type)));
        expect(consumers.length, `${service} emits ${type}`).toBeGreaterThan(0);
      }
    }
  });

  it('consumes only domain types someone emits', () => {
    const emitted = new Set(Object.values(emits).flat());
    for (const trigger of triggers) {
      const type = trigger.filter.exact?.['type'];
      if (type === undefined) continue;
      expect(domainTypes.has(type), `${trigger.name} consumes ${type}`).toBe(true);
      expect(emitted.has(type), `${trigger.name} consumes ${type}`).toBe(true);
    }
    // ... and every domain type is consumed by some trigger and has a data schema.
    for (const type of domainTypes) {
      expect(triggers.some((t) => matchesFilter(t.filter, { type, subject: 'uploads/p/u' })), type).toBe(true);
      expect(eventDataSchemas).toHaveProperty([type]);
    }
  });

  it('never delivers one event twice to the same subscriber', () => {
    const samples = [...domainTypes, `${S3_OBJECT_CREATED_PREFIX}Put`, `${S3_OBJECT_CREATED_PREFIX}Post`];
    for (const type of samples) {
      const subscribers = triggers.filter((t) => matchesFilter(t.filter, { type, subject: 'uploads/p/u' })).map((t) => t.subscriber.service);
      expect(new Set(subscribers).size, type).toBe(subscribers.length);
    }
  });

  it('does not route a service its own replies (no loops)', () => {
    for (const trigger of triggers) {
      const own = emits[trigger.subscriber.service];
      for (const type of own) expect(matchesFilter(trigger.filter, example(type)), `${trigger.name} <- ${type}`).toBe(false);
    }
  });

  it('has unique trigger names that are valid Kubernetes names', () => {
    const names = triggers.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it('has delivery policies Knative accepts', () => {
    for (const { name, delivery } of triggers) {
      expect(Number.isInteger(delivery.retry) && delivery.retry >= 0, name).toBe(true);
      expect(['linear', 'exponential']).toContain(delivery.backoffPolicy);
      expect(durationMs(delivery.backoffDelay), name).toBeGreaterThan(0);
      expect(durationMs(delivery.timeout), name).toBeGreaterThan(0);
    }
  });
});

describe('eventTypeLabel', () => {
  it('keeps metric labels to a bounded set', () => {
    expect(eventTypeLabel(EventType.approved)).toBe(EventType.approved);
    expect(eventTypeLabel(`${S3_OBJECT_CREATED_PREFIX}Post`)).toBe(`${S3_OBJECT_CREATED_PREFIX}*`);
    expect(eventTypeLabel(`${S3_OBJECT_CREATED_PREFIX}CompleteMultipartUpload`)).toBe(`${S3_OBJECT_CREATED_PREFIX}*`);
    expect(eventTypeLabel('x.y.z')).toBe('other');
  });
});
