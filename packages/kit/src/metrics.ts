/**
 * Prometheus metrics: one registry per service instance, so tests can run several apps in one process.
 *
 * Every metric the project defines is named `avatarpipeline_…` (k8s-tests hold them to it), so its
 * series never collide with other software's in a shared Prometheus; prom-client's default
 * process and Node.js metrics keep their standard names, which dashboards and tools expect.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';

/** Resolution of the event-loop delay histogram (nodejs_eventloop_lag_*), in ms. */
export const EVENT_LOOP_MONITORING_MS = 50;

/** What an event endpoint did with a delivery (`avatarpipeline_cloudevents_handled_total{outcome}`). */
export const eventOutcomes = ['reply', 'accepted', 'rejected', 'error'] as const;

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  eventsHandled: Counter<'type' | 'outcome'>;
  eventDuration: Histogram<'type'>;
}

/** Every combination of the given values of each label. */
export function labelCombinations<L extends string>(values: { readonly [K in L]: readonly string[] }): Record<L, string>[] {
  return Object.entries<readonly string[]>(values).reduce<Record<string, string>[]>(
    (sets, [label, labelValues]) => sets.flatMap((set) => labelValues.map((v) => ({ ...set, [label]: v }))),
    [{}],
  ) as Record<L, string>[];
}

/**
 * Exports each label set at 0 now rather than at its first increment. Prometheus computes
 * increase() and rate() from samples, so a series that first appears already at 1 shows no
 * increase: without this, the first dead letter (or error) on a freshly started pod would never
 * fire an alert. Label values are bounded by design, so the sets are the code's own enumerations.
 */
export function zeroed<L extends string, M extends Counter<L> | Histogram<L>>(metric: M, labelSets: Iterable<LabelValues<L>>): M {
  for (const labels of labelSets) {
    if (metric instanceof Counter) metric.inc(labels, 0);
    else metric.zero(labels);
  }
  return metric;
}

export function createMetrics(service: string, { defaults = true } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // The event-loop delay monitor wakes the process every `eventLoopMonitoringPrecision` ms, busy or
  // idle: at prom-client's default of 10 ms that is ~4 ms of CPU a second per process (100 wake-ups),
  // which across a pipeline of services is CPU the image stages do not get. At 50 ms a stall of
  // 50 ms or more is still always seen (and nodejs_eventloop_lag_seconds is measured on scrape).
  if (defaults) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_MS });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'avatarpipeline_http_request_duration_seconds',
      help: 'HTTP request duration by matched route and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    eventsHandled: new Counter({
      name: 'avatarpipeline_cloudevents_handled_total',
      help: 'CloudEvents received, by type and outcome (reply, accepted, rejected, error)',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    }),
    eventDuration: new Histogram({
      name: 'avatarpipeline_cloudevent_handling_duration_seconds',
      help: 'Time to handle one CloudEvent, by type',
      labelNames: ['type'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
