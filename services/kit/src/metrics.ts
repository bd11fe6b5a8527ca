/** Prometheus metrics: one registry per service instance, so tests can run several apps in one process. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  eventsHandled: Counter<'type' | 'outcome'>;
  eventDuration: Histogram<'type'>;
}

export function createMetrics(service: string, { defaults = true } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (defaults) collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by matched route and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    eventsHandled: new Counter({
      name: 'cloudevents_handled_total',
      help: 'CloudEvents received, by type and outcome (reply, accepted, ignored, rejected, error)',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    }),
    eventDuration: new Histogram({
      name: 'cloudevent_handling_duration_seconds',
      help: 'Time to handle one CloudEvent, by type',
      labelNames: ['type'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
