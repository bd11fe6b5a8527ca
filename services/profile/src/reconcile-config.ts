/**
 * The reconciler's settings. It runs once per invocation as the `reconciler` CronJob
 * (reconcile-main.ts, `reconcileEnv`), or on a timer inside profile in the local stack
 * (start.ts, `reconcileTimerEnv` in profile's environment: RECONCILE_PERIOD_SECONDS set).
 */
import { z } from 'zod';
import { awsEnv, bucketEnv, commonEnv, env, sinkTokenEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { processingWorstCaseMs, uploadDeliveryWorstCaseMs } from '@avatar-pipeline/kit/topology';

/**
 * How long after its ticket expired an upload may stay `pending` (default 1 h). An upload begun
 * just before the expiry may still be arriving, and its S3 event may be retried for a while before
 * moderate takes it (`uploadDeliveryWorstCaseMs`, 22 min): this grace outlasts both.
 */
export const DEFAULT_PENDING_TIMEOUT_SECONDS = 3600;

/**
 * How long an upload may stay `processing` (default 2 h): longer than the pipeline itself can take
 * to end it, every stage and the dead letter in their worst case (`processingWorstCaseMs`,
 * about 1 h 42 min), so the reconciler only ends what the pipeline has lost (a dropped event, a
 * stopped stage), never what it would still finish or fail with a better reason.
 */
export const DEFAULT_PROCESSING_TIMEOUT_SECONDS = 7200;

/**
 * The longest either timeout may be: an upload record that has not finished expires (DynamoDB TTL)
 * a day after its ticket was issued, and the reconciler must end it before it vanishes unannounced
 * (a ticket lives at most an hour, PRESIGN_EXPIRES_SECONDS).
 */
export const MAX_TIMEOUT_SECONDS = 20 * 3600;

const timeout = (fallback: number, min: number) =>
  z.coerce
    .number()
    .int()
    .min(min)
    .max(MAX_TIMEOUT_SECONDS, `must be at most ${MAX_TIMEOUT_SECONDS} (20 h): unfinished upload records expire a day after their ticket`)
    .default(fallback);

/** How long an upload may wait in review for a moderator (default 1 day) before it ends `rejected` (reason `review_timeout`). */
export const DEFAULT_REVIEW_TIMEOUT_SECONDS = 86_400;

/** How long a superseded avatar's objects are kept (default 1 day): longer than CDN caches keep them, so no client is left with a broken link. */
export const DEFAULT_AVATAR_RETAIN_SECONDS = 86_400;

/**
 * The longest a review may wait, or a superseded avatar be kept: the record that carries either
 * wait expires (DynamoDB TTL) 30 days after the wait began, and the reconciler must act on it
 * before then.
 */
export const MAX_RETENTION_SECONDS = 20 * 86_400;

const retention = (fallback: number, min: number) =>
  z.coerce
    .number()
    .int()
    .min(min)
    .max(MAX_RETENTION_SECONDS, `must be at most ${MAX_RETENTION_SECONDS} (20 days): the record it is kept by expires 30 days after it began`)
    .default(fallback);

/** The timeouts, shared by both ways of running. */
export const reconcileTimeoutsEnv = {
  UPLOAD_PENDING_TIMEOUT_SECONDS: timeout(DEFAULT_PENDING_TIMEOUT_SECONDS, 0).describe(
    'How long after its ticket expired an upload may stay `pending` before it ends `expired` (at most 72000: unfinished records expire a day after their ticket).',
  ),
  UPLOAD_PROCESSING_TIMEOUT_SECONDS: timeout(DEFAULT_PROCESSING_TIMEOUT_SECONDS, 1).describe(
    'How long an upload may stay `processing` before it ends `failed` (reason `timeout`; at most 72000). Also how long after an erasure the reconciler sweeps the player once more: no pipeline step begun before it can still be running.',
  ),
  REVIEW_TIMEOUT_SECONDS: retention(DEFAULT_REVIEW_TIMEOUT_SECONDS, 1).describe(
    'How long an upload may wait `in_review` for a moderator before it ends `rejected` (reason `review_timeout`, no ban; at most 1728000).',
  ),
  AVATAR_RETAIN_SECONDS: retention(DEFAULT_AVATAR_RETAIN_SECONDS, 0).describe(
    'How long a superseded avatar\'s objects are kept after a newer one became current, so CDN caches expire first (at most 1728000).',
  ),
};

/** The CronJob's environment (the same table, bucket and broker binding as profile's). */
export const reconcileEnv = {
  LOG_LEVEL: commonEnv.LOG_LEVEL,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  K_SINK: env.url().describe('Where `expired`, `failed`, `rejected` (review timeout) and `player.erased` (an erasure\'s last pass) are posted: the broker (the CronJob\'s SinkBinding sets it).'),
  ...sinkTokenEnv,
  ...reconcileTimeoutsEnv,
};

export type ReconcileConfig = z.output<z.ZodObject<typeof reconcileEnv>>;

/**
 * The local stack's timer inside profile: unset (the default, and in every cluster, where the
 * CronJob runs it) means no timer. Profile's own configuration supplies the rest, the timeouts included.
 */
export const reconcileTimerEnv = {
  RECONCILE_PERIOD_SECONDS: z.coerce
    .number()
    .positive()
    .optional()
    .describe('Run the reconciler inside profile every N seconds: the local stack\'s stand-in for the CronJob (it sets 60); leave unset in a cluster.'),
};

/** Timeouts shorter than the pipeline's own budgets end uploads it may still finish: said at start, not refused (tests use seconds). */
export function timeoutWarnings(config: { UPLOAD_PENDING_TIMEOUT_SECONDS: number; UPLOAD_PROCESSING_TIMEOUT_SECONDS: number }): string[] {
  const warnings: string[] = [];
  const delivery = Math.ceil(uploadDeliveryWorstCaseMs() / 1000);
  const processing = Math.ceil(processingWorstCaseMs() / 1000);
  if (config.UPLOAD_PENDING_TIMEOUT_SECONDS < delivery) {
    warnings.push(`UPLOAD_PENDING_TIMEOUT_SECONDS (${config.UPLOAD_PENDING_TIMEOUT_SECONDS}) is shorter than an upload event's retries to moderate (${delivery} s): late but real uploads may end expired`);
  }
  if (config.UPLOAD_PROCESSING_TIMEOUT_SECONDS < processing) {
    warnings.push(`UPLOAD_PROCESSING_TIMEOUT_SECONDS (${config.UPLOAD_PROCESSING_TIMEOUT_SECONDS}) is shorter than the pipeline's own worst case (${processing} s): uploads it would still finish may end failed`);
  }
  return warnings;
}
