/** Moderation metrics; every label value comes from a fixed set, each series exported from the start. */
import { Counter, Histogram, type Registry } from 'prom-client';
import { imageProblemCodes } from '@avatar-pipeline/imaging';
import { labelCombinations, zeroed } from '@avatar-pipeline/kit/metrics';
import { viewBackgrounds, viewRegions } from './views.js';

/** `review`: sent to a moderator (the policy's review band); `banned`: a banned picture, refused before the model. */
export const decisionOutcomes = ['approved', 'review', 'rejected', 'banned', 'invalid'] as const;
export type DecisionOutcome = (typeof decisionOutcomes)[number];

/** `provider`: the configured provider's name (one per process). */
export function moderationMetrics(registry: Registry, provider: string) {
  return {
    decisions: zeroed(
      new Counter({
        name: 'avatarpipeline_moderation_decisions_total',
        help: 'Uploads decided, by outcome (approved, sent to review, rejected by the policy, a banned picture, invalid image) and provider',
        labelNames: ['outcome', 'provider'] as const,
        registers: [registry],
      }),
      labelCombinations({ outcome: decisionOutcomes, provider: [provider] }),
    ),
    duration: zeroed(
      new Histogram({
        name: 'avatarpipeline_moderation_duration_seconds',
        help: 'Time the moderation provider took for one image (including the wait for the model)',
        labelNames: ['provider'] as const,
        buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
      [{ provider }],
    ),
    views: zeroed(
      new Counter({
        name: 'avatarpipeline_moderation_views_total',
        help: 'Views shown to the provider: the whole image or the avatar square, opaque or composited on black or white',
        labelNames: ['region', 'background'] as const,
        registers: [registry],
      }),
      labelCombinations({ region: viewRegions, background: viewBackgrounds }),
    ),
    checkFailures: zeroed(
      new Counter({
        name: 'avatarpipeline_moderation_check_failures_total',
        help: 'Uploads refused by the checks before any model, by problem code',
        labelNames: ['code'] as const,
        registers: [registry],
      }),
      imageProblemCodes.map((code) => ({ code })),
    ),
  };
}

export type ModerationMetrics = ReturnType<typeof moderationMetrics>;
