import { describe, expect, it } from 'vitest';
import { eventDataSchemas } from '../src/events.js';
import { filterProblems, matchesFilters, type Filter } from '../src/filters.js';
import { deadLetterSink, defineTriggers, deliveryPolicies, durationMs, emits, EventType, eventTypeLabel, externalEvents, publicServices, S3_OBJECT_CREATED_PREFIX, serviceNames, sinkBound, triggers } from '../src/topology.js';

/** Filters the types refuse, as plain data reaches the checks (e.g. from JavaScript). */
const untyped = (filters: unknown) => filters as Filter[];

describe('matchesFilters', () => {
  it('matches exact attributes exactly, case-sensitively', () => {
    const filters: Filter[] = [{ exact: { type: EventType.approved } }];
    expect(matchesFilters(filters, { type: EventType.approved, source: '/x' })).toBe(true);
    expect(matchesFilters(filters, { type: `${EventType.approved}.v2` })).toBe(false);
    expect(matchesFilters(filters, { type: EventType.approved.toUpperCase() })).toBe(false);
    expect(matchesFilters(filters, { type: EventType.approved.slice(0, -1) })).toBe(false);
  });

  it('matches prefixes and suffixes', () => {
    const filters: Filter[] = [{ prefix: { type: S3_OBJECT_CREATED_PREFIX } }, { prefix: { subject: 'uploads/' } }];
    expect(matchesFilters(filters, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'uploads/p/u' })).toBe(true);
    expect(matchesFilters(filters, { type: `${S3_OBJECT_CREATED_PREFIX}Put`, subject: 'uploads/' })).toBe(true);
    expect(matchesFilters(filters, { type: 'com.amazonaws.s3.ObjectRemoved:Delete', subject: 'uploads/p/u' })).toBe(false);
    expect(matchesFilters(filters, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'avatars/p/u/64.webp' })).toBe(false);
    expect(matchesFilters(filters, { type: `${S3_OBJECT_CREATED_PREFIX}Post`, subject: 'x/uploads/p/u' })).toBe(false);
    const webp: Filter[] = [{ suffix: { subject: '.webp' } }];
    expect(matchesFilters(webp, { subject: 'avatars/p/u/64.webp' })).toBe(true);
    expect(matchesFilters(webp, { subject: 'avatars/p/u/64.webp.png' })).toBe(false);
  });

  it('requires every entry, and a missing attribute never matches exact, prefix or suffix', () => {
    const filters: Filter[] = [{ exact: { type: EventType.ready } }, { exact: { source: '/avatar-pipeline/profile' } }, { prefix: { subject: 'uploads/' } }];
    const event = { type: EventType.ready, source: '/avatar-pipeline/profile', subject: 'uploads/p/u' };
    expect(matchesFilters(filters, event)).toBe(true);
    expect(matchesFilters(filters, { ...event, source: '/elsewhere' })).toBe(false);
    expect(matchesFilters(filters, { ...event, subject: 'other' })).toBe(false);
    expect(matchesFilters(filters, { type: event.type, source: event.source })).toBe(false);
    expect(matchesFilters([{ suffix: { subject: 'u' } }], { subject: null })).toBe(false);
  });

  it('passes any when one nested filter does, all when every one does, and not when its filter fails', () => {
    const terminal: Filter[] = [{ any: [{ exact: { type: EventType.ready } }, { exact: { type: EventType.failed } }] }];
    expect(matchesFilters(terminal, { type: EventType.failed })).toBe(true);
    expect(matchesFilters(terminal, { type: EventType.approved })).toBe(false);
    const both: Filter[] = [{ all: [{ prefix: { type: 'avatarpipeline.' } }, { suffix: { type: '.ready' } }] }];
    expect(matchesFilters(both, { type: EventType.ready })).toBe(true);
    expect(matchesFilters(both, { type: EventType.failed })).toBe(false);
    const notFailed: Filter[] = [{ not: { exact: { type: EventType.failed } } }];
    expect(matchesFilters(notFailed, { type: EventType.ready })).toBe(true);
    expect(matchesFilters(notFailed, { type: EventType.failed })).toBe(false);
  });

  it('lets an event without the attribute through not (the nested filter fails on it)', () => {
    const noSubject: Filter[] = [{ not: { prefix: { subject: 'uploads/' } } }];
    expect(matchesFilters(noSubject, { type: 'x' })).toBe(true);
    expect(matchesFilters(noSubject, { type: 'x', subject: 'uploads/p/u' })).toBe(false);
  });

  it('lets everything through no filters, and compares extension values as strings', () => {
    expect(matchesFilters([], {})).toBe(true);
    expect(matchesFilters([], { type: 'anything' })).toBe(true);
    expect(matchesFilters([{ exact: { attempt: '3' } }], { attempt: 3 })).toBe(true);
  });
});

describe('filterProblems', () => {
  it('accepts one dialect per entry, one lowercase attribute per map, and non-empty all/any/not', () => {
    const valid: Filter[] = [
      { exact: { type: EventType.ready } },
      { prefix: { subject: 'uploads/' } },
      { suffix: { myextension2: '-value' } },
      { all: [{ exact: { type: 'a' } }] },
      { any: [{ exact: { type: 'a' } }, { not: { prefix: { source: '/x' } } }] },
      { not: { any: [{ exact: { type: 'b' } }] } },
    ];
    expect(filterProblems(valid)).toEqual([]);
    expect(filterProblems([])).toEqual([]);
  });

  it('refuses a map with more than one attribute', () => {
    expect(filterProblems([{ prefix: { type: S3_OBJECT_CREATED_PREFIX, subject: 'uploads/' } }])).toEqual([
      'Multiple items found, can have only one key-value: spec.filters[0].prefix',
    ]);
  });

  it.each(['Type', 'source-id', '9lives', 'ce_type', ''])('refuses the attribute name %j', (name) => {
    expect(filterProblems([{ exact: { type: 'a' } }, { any: [{ exact: { [name]: 'a' } }] }])).toEqual([
      `invalid key name ${JSON.stringify(name)}: spec.filters[1].any[0].exact[${name}]\nAttribute name must start with a letter and can only contain lowercase alphanumeric`,
    ]);
  });

  it('refuses an empty value, map, all or any (Knative would drop the entry and match everything)', () => {
    expect(filterProblems([{ exact: { type: '' } }])).toEqual(["invalid arguments, attribute and value can't be empty: spec.filters[0].exact[type]"]);
    expect(filterProblems([{ suffix: {} }])).toEqual(['missing field(s): spec.filters[0].suffix']);
    expect(filterProblems(untyped([{ all: [] }, { not: { any: [] } }]))).toEqual(['missing field(s): spec.filters[0].all', 'missing field(s): spec.filters[1].not.any']);
  });

  it('refuses an entry with two dialects, none, or one it does not know', () => {
    // @ts-expect-error: the type, too, holds an entry to one dialect
    const twoDialects: Filter = { exact: { type: 'a' }, prefix: { subject: 'b' } };
    expect(filterProblems([{ exact: { type: 'a' } }, twoDialects])).toEqual([
      'multiple dialects found, filters can have only one dialect set: spec.filters[1]',
    ]);
    expect(filterProblems(untyped([{ not: { all: [{ exact: { type: 'a' } }], any: [{ exact: { type: 'a' } }] } }]))).toEqual([
      'multiple dialects found, filters can have only one dialect set: spec.filters[0].not',
    ]);
    expect(filterProblems(untyped([{}]))).toEqual(['expected exactly one, got neither: spec.filters[0]']);
    expect(filterProblems(untyped([{ cesql: "type = 'a'" }]), 'filters')).toEqual(['must not set the field(s): filters[0].cesql']);
  });

  it('lets defineTriggers refuse a trigger with such a filter', () => {
    const trigger = { ...triggers[0]!, name: 'bad', filters: [{ prefix: { type: 'a', subject: 'b' } }] };
    expect(() => defineTriggers([trigger])).toThrow('Trigger bad: Multiple items found, can have only one key-value: spec.filters[0].prefix');
    expect(defineTriggers(triggers)).toBe(triggers);
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
    for (const name of [...publicServices, ...sinkBound]) expect(known.has(name)).toBe(true);
    expect(Object.keys(emits).sort()).toEqual([...serviceNames].sort());
  });

  it('gives every emitted event type at least one consumer, except the types meant for consumers outside the system', () => {
    const external = new Set<string>(externalEvents);
    for (const [service, types] of Object.entries(emits)) {
      for (const type of types) {
        if (external.has(type)) continue;
        const consumers = triggers.filter((t) => matchesFilters(t.filters, example(type)));
        expect(consumers.length, `${service} emits ${type}`).toBeGreaterThan(0);
      }
    }
  });

  it('consumes only domain types someone emits', () => {
    const emitted = new Set(Object.values(emits).flat());
    for (const trigger of triggers) {
      for (const type of trigger.filters.flatMap((f) => f.exact?.['type'] ?? [])) {
        expect(domainTypes.has(type), `${trigger.name} consumes ${type}`).toBe(true);
        expect(emitted.has(type), `${trigger.name} consumes ${type}`).toBe(true);
      }
    }
    // ... and every domain type is consumed by some trigger (or outside the system) and has a data schema.
    for (const type of domainTypes) {
      const external = (externalEvents as readonly string[]).includes(type);
      expect(triggers.some((t) => matchesFilters(t.filters, { type, subject: 'uploads/p/u' })), type).toBe(!external);
      expect(eventDataSchemas).toHaveProperty([type]);
    }
  });

  it('emits every external type from some service, and takes none of them itself', () => {
    const emitted = new Set(Object.values(emits).flat());
    for (const type of externalEvents) {
      expect(emitted.has(type), type).toBe(true);
      expect(triggers.some((t) => matchesFilters(t.filters, { type })), type).toBe(false);
    }
  });

  it('tells the player of a review through push, with the notification policy', () => {
    const trigger = triggers.find((t) => t.name === 'push-review-requested');
    expect(trigger).toMatchObject({ filters: [{ exact: { type: EventType.reviewRequested } }], subscriber: { service: 'push', path: '/events' } });
    expect(trigger?.delivery).toBe(deliveryPolicies.notification);
    expect(emits.moderate).toContain(EventType.reviewRequested);
  });

  it('never delivers one event twice to the same subscriber', () => {
    const samples = [...domainTypes, `${S3_OBJECT_CREATED_PREFIX}Put`, `${S3_OBJECT_CREATED_PREFIX}Post`];
    for (const type of samples) {
      const subscribers = triggers.filter((t) => matchesFilters(t.filters, { type, subject: 'uploads/p/u' })).map((t) => t.subscriber.service);
      expect(new Set(subscribers).size, type).toBe(subscribers.length);
    }
  });

  it('does not route a service its own replies (no loops)', () => {
    for (const trigger of triggers) {
      const own = emits[trigger.subscriber.service];
      for (const type of own) expect(matchesFilters(trigger.filters, example(type)), `${trigger.name} <- ${type}`).toBe(false);
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
    for (const [name, delivery] of [...triggers.map((t) => [t.name, t.delivery] as const), ...Object.entries(deliveryPolicies)]) {
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
