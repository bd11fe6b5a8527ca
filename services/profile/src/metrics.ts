/** The profile service's own metrics (all label values bounded, each series exported from the start). */
import { Counter, Histogram, type Registry } from 'prom-client';
import { zeroed } from '@avatar-pipeline/kit/metrics';
import { pictureSyncOutcomes } from './cognito.js';
import { deadLetterSeries } from './dead-letter.js';

/** A ready upload became the current avatar, or a newer one already was. */
export const profileUpdateOutcomes = ['current', 'stale'] as const;

export function profileMetrics(registry: Registry) {
  return {
    endToEnd: new Histogram({
      name: 'avatarpipeline_pipeline_end_to_end_seconds',
      help: 'Time from the object upload to the upload becoming ready, observed once per upload',
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120],
      registers: [registry],
    }),
    profileUpdates: zeroed(
      new Counter({
        name: 'avatarpipeline_profile_updates_total',
        help: 'Ready uploads by whether they became the current avatar (current) or a newer one already was (stale)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      profileUpdateOutcomes.map((outcome) => ({ outcome })),
    ),
    cognitoSyncs: zeroed(
      new Counter({
        name: 'avatarpipeline_profile_cognito_sync_total',
        help: 'Best-effort Cognito picture syncs by outcome (ok, user_not_found, failed: still failing after its retries; ready was not held back)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      pictureSyncOutcomes.map((outcome) => ({ outcome })),
    ),
    deadLetters: zeroed(
      new Counter({
        name: 'avatarpipeline_deadletter_events_total',
        help: 'Events that exhausted their retries, by type, stage (processing, notification, other) and outcome (failed, ready, already_ended, unknown_upload, duplicate, unidentified, logged)',
        labelNames: ['type', 'stage', 'outcome'],
        registers: [registry],
      }),
      deadLetterSeries,
    ),
  };
}

export type ProfileMetrics = ReturnType<typeof profileMetrics>;
