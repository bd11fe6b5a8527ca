/** Moderation metrics; every label value comes from a fixed set. */
import { Counter, Histogram, type Registry } from 'prom-client';

export type DecisionOutcome = 'approved' | 'rejected' | 'invalid';

export function moderationMetrics(registry: Registry) {
  return {
    decisions: new Counter({
      name: 'moderation_decisions_total',
      help: 'Uploads decided, by outcome (approved, rejected by the policy, invalid image) and provider',
      labelNames: ['outcome', 'provider'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'moderation_duration_seconds',
      help: 'Time the moderation provider took for one image (including the wait for the model)',
      labelNames: ['provider'] as const,
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    views: new Counter({
      name: 'moderation_views_total',
      help: 'Views shown to the provider: the whole image or the avatar square, opaque or composited on black or white',
      labelNames: ['region', 'background'] as const,
      registers: [registry],
    }),
    checkFailures: new Counter({
      name: 'moderation_check_failures_total',
      help: 'Uploads refused by the checks before any model, by problem code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
  };
}

export type ModerationMetrics = ReturnType<typeof moderationMetrics>;
