/** Prometheus metrics: one registry per service instance, so tests can run several apps in one process. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Resolution of the event-loop delay histogram (nodejs_eventloop_lag_*), in ms. */
export const EVENT_LOOP_MONITORING_MS = 50;

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  eventsHandled: Counter<'type' | 'outcome'>;
  eventDuration: Histogram<'type'>;
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
