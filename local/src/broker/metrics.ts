/** Broker metrics; label values stay bounded (trigger names come from the topology). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { labelCombinations, zeroed } from '@avatar-pipeline/kit/metrics';

export const deliveryOutcomes = ['delivered', 'retried', 'dead_lettered', 'dead_letter_retried', 'undeliverable'] as const;
export const ingestOrigins = ['http', 'reply'] as const;
export type IngestOrigin = (typeof ingestOrigins)[number];
export const ingestOutcomes = ['routed', 'dropped_no_trigger', 'invalid', 'ttl_exceeded'] as const;

export interface BrokerMetrics {
  ingested: Counter<'origin' | 'outcome'>;
  deliveries: Counter<'trigger' | 'outcome'>;
  duration: Histogram<'trigger'>;
  processing: Histogram<'trigger'>;
}

export function brokerMetrics(
  registry: Registry,
  triggerNames: readonly string[],
  gauges: { pending: () => number; undeliverable: () => number },
): BrokerMetrics {
  // Every series exists from the start, so rates and alerts work before the first failure.
  const byTrigger = triggerNames.map((trigger) => ({ trigger }));
  const deliveries = zeroed(
    new Counter({
      name: 'avatarpipeline_broker_deliveries_total',
      help: 'Deliveries to triggers by outcome: delivered, retried (one per retry), dead_lettered, dead_letter_retried (one per retry of the dead-letter sink), undeliverable (parked)',
      labelNames: ['trigger', 'outcome'],
      registers: [registry],
    }),
    labelCombinations({ trigger: triggerNames, outcome: deliveryOutcomes }),
  );
  new Gauge({
    name: 'avatarpipeline_broker_pending_deliveries',
    help: 'Deliveries accepted and not yet delivered, dead-lettered or parked',
    registers: [registry],
    collect() {
      this.set(gauges.pending());
    },
  });
  new Gauge({
    name: 'avatarpipeline_broker_undeliverable_events',
    help: 'Events parked in memory because neither the subscriber nor the dead-letter sink took them',
    registers: [registry],
    collect() {
      this.set(gauges.undeliverable());
    },
  });
  return {
    ingested: zeroed(
      new Counter({
        name: 'avatarpipeline_broker_events_ingested_total',
        help: 'Events offered to the broker, by origin (http, reply) and outcome (routed, dropped_no_trigger, invalid, ttl_exceeded)',
        labelNames: ['origin', 'outcome'],
        registers: [registry],
      }),
      labelCombinations({ origin: ingestOrigins, outcome: ingestOutcomes }),
    ),
    deliveries,
    duration: zeroed(
      new Histogram({
        name: 'avatarpipeline_broker_delivery_duration_seconds',
        help: 'Duration of one delivery attempt to a trigger subscriber',
        labelNames: ['trigger'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
      }),
      byTrigger,
    ),
    // Knative's broker filter reports the same split: event_processing_latencies (arrival to
    // dispatch) and event_dispatch_latencies (the attempt itself, avatarpipeline_broker_delivery_duration_seconds).
    processing: zeroed(
      new Histogram({
        name: 'avatarpipeline_broker_event_processing_seconds',
        help: 'Time from an event entering the broker to the dispatch of its first attempt to a trigger subscriber (waiting for a delivery slot, the OIDC token)',
        labelNames: ['trigger'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [registry],
      }),
      byTrigger,
    ),
  };
}
