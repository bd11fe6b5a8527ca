import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { labelCombinations, zeroed } from '../src/metrics.js';
import { eventTypeLabels, eventTypeLabelsOf, EventType, S3_OBJECT_CREATED_PREFIX } from '../src/topology.js';

describe('labelCombinations', () => {
  it('gives every combination of the values of each label', () => {
    expect(labelCombinations({ a: ['1', '2'], b: ['x', 'y', 'z'] })).toHaveLength(6);
    expect(labelCombinations({ a: ['1', '2'], b: ['x'] })).toEqual([
      { a: '1', b: 'x' },
      { a: '2', b: 'x' },
    ]);
    expect(labelCombinations({ a: [], b: ['x'] })).toEqual([]);
  });
});

describe('zeroed', () => {
  it('exports a counter’s and a histogram’s series at 0 before anything is counted', async () => {
    const registry = new Registry();
    zeroed(new Counter({ name: 'c_total', help: 'c', labelNames: ['outcome'], registers: [registry] }), [{ outcome: 'ok' }, { outcome: 'error' }]);
    zeroed(new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['type'], buckets: [1], registers: [registry] }), [{ type: 't' }]);
    const text = await registry.metrics();
    expect(text).toMatch(/^c_total\{outcome="ok"\} 0$/m);
    expect(text).toMatch(/^c_total\{outcome="error"\} 0$/m);
    expect(text).toMatch(/^h_seconds_count\{type="t"\} 0$/m);
    expect(text).toMatch(/^h_seconds_bucket\{le="\+Inf",type="t"\} 0$/m);
  });
});

describe('eventTypeLabelsOf', () => {
  it('names the labels of the types a route pattern takes', () => {
    expect(eventTypeLabelsOf(EventType.ready)).toEqual([EventType.ready]);
    expect(eventTypeLabelsOf(`${S3_OBJECT_CREATED_PREFIX}*`)).toEqual([`${S3_OBJECT_CREATED_PREFIX}*`]);
    expect(eventTypeLabelsOf('*')).toEqual(eventTypeLabels);
    expect(eventTypeLabels).toContain('other');
    expect(eventTypeLabelsOf('avatarpipeline.avatar.*')).toEqual(Object.values(EventType).filter((type) => type.startsWith('avatarpipeline.avatar.')));
    expect(eventTypeLabelsOf('avatarpipeline.*')).toEqual(Object.values(EventType));
  });
});
