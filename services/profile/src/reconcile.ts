/**
 * The reconciler: ends every upload that has waited too long, so each one reaches exactly one
 * terminal state and its player is told, whatever was lost on the way (an abandoned ticket, a
 * dropped event, a stage that stopped).
 *
 * One pass (`reconcile`):
 * - `pending` whose ticket expired more than UPLOAD_PENDING_TIMEOUT_SECONDS ago -> `expired`
 *   (reason `expired`), announced as `avatarpipeline.avatar.expired`;
 * - `processing` for more than UPLOAD_PROCESSING_TIMEOUT_SECONDS -> `failed` (reason `timeout`),
 *   announced as `avatarpipeline.avatar.failed`;
 *   found by a Query of the sparse `open-uploads` index (status, then the moment its clock started):
 *   never a table scan. Each end is a conditional write that holds only while the upload still
 *   waits in that state since before the cutoff, so the pipeline moving it on or ending it at the
 *   same moment wins or loses cleanly, and a second reconciler (or a re-run) changes nothing.
 *   Whatever is under the upload's key (a late upload) is deleted, and a failed upload's renditions
 *   too; then the event goes to K_SINK with a deterministic id (`<uploadId>.expired`,
 *   `<uploadId>.failed`: push takes each once per device), and only then does the upload leave the
 *   index: a pass that dies in between leaves it there, and the next pass announces it again.
 * - `in_review` for more than REVIEW_TIMEOUT_SECONDS -> `rejected` (reason `review_timeout`: no
 *   moderator judged it, so no ban), its REVIEW item `expired`, announced as
 *   `avatarpipeline.avatar.rejected` (the same index entry, conditional writes and announcement as
 *   above; a moderator deciding at the same moment wins or loses cleanly: the decision's write holds
 *   only while the upload is still in review);
 * - every object under `uploads/` without an upload record, with a key presign never issues, or of
 *   an upload that is over, is deleted (nothing will ever read it; moderate would only delete it);
 * - superseded avatars (`openStatus = superseded` in the same index, since when) older than
 *   AVATAR_RETAIN_SECONDS: their objects and OWNER item are deleted, and they leave the index;
 * - erasures (`openStatus = erasure`, since the latest request) older than
 *   UPLOAD_PROCESSING_TIMEOUT_SECONDS, when no pipeline step begun before them can still write:
 *   the player is swept once more, the erasure announced if it was not, and it leaves the index.
 *
 * A pass records metrics (`reconcilerMetrics`) and returns a summary, which the CronJob logs as its
 * result; any failure is counted and logged, and the pass goes on with the next upload.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { sendEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { expiredSchema, failedSchema, parseUploadKey, processingTimedOut, rejectedSchema, reviewTimedOut, uploadExpired, uploadKey, type Reason } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { zeroed } from '@avatar-pipeline/kit/metrics';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { isTerminal, openStatuses, systemClock, type Clock, type OpenStatus, type OpenUpload, type UploadRecord, type UploadStore } from '@avatar-pipeline/kit/table';
import { EventType, UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';
import { deleteRenditions } from './avatar.js';
import { announceErasure, sweep, type ErasureDeps } from './erasure.js';
import type { ReconcileConfig } from './reconcile-config.js';
import { SOURCE } from './ready.js';
import type { ProfileStores } from './stores.js';

export const endReasons = ['expired', 'timeout', 'review_timeout'] as const;
export type EndReason = (typeof endReasons)[number];
export const orphanReasons = ['no_record', 'ended', 'invalid_key'] as const;
export type OrphanReason = (typeof orphanReasons)[number];

/** The reconciler's metrics (every label value from a fixed set, each counter's series exported from the start). */
export function reconcilerMetrics(registry: Registry) {
  return {
    ended: zeroed(
      new Counter<'reason'>({
        name: 'avatarpipeline_reconciler_uploads_ended_total',
        help: 'Uploads the reconciler ended, by reason (expired: pending past its ticket; timeout: processing too long, failed; review_timeout: in review too long, rejected)',
        labelNames: ['reason'],
        registers: [registry],
      }),
      endReasons.map((reason) => ({ reason })),
    ),
    orphans: zeroed(
      new Counter<'reason'>({
        name: 'avatarpipeline_reconciler_orphans_deleted_total',
        help: 'Objects under uploads/ the reconciler deleted, by reason (no_record, ended: the upload is over, invalid_key)',
        labelNames: ['reason'],
        registers: [registry],
      }),
      orphanReasons.map((reason) => ({ reason })),
    ),
    avatarsDeleted: new Counter({
      name: 'avatarpipeline_reconciler_superseded_avatars_deleted_total',
      help: 'Superseded avatars whose objects the reconciler deleted, AVATAR_RETAIN_SECONDS after a newer one became current',
      registers: [registry],
    }),
    erasuresFinished: new Counter({
      name: 'avatarpipeline_reconciler_erasures_finished_total',
      help: "Erasures the reconciler swept a last time (once no pipeline step begun before them could still write), announcing those the request could not",
      registers: [registry],
    }),
    oldest: new Gauge<'status'>({
      name: 'avatarpipeline_reconciler_oldest_open_upload_seconds',
      help: 'Age (since its ticket was issued) of the oldest upload still pending, processing or in review after the last pass, by status; 0 when none',
      labelNames: ['status'],
      registers: [registry],
    }),
    runs: zeroed(
      new Counter<'outcome'>({
        name: 'avatarpipeline_reconciler_runs_total',
        help: 'Reconciler passes, by outcome (ok, error: at least one upload or object could not be handled)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      ['ok', 'error'].map((outcome) => ({ outcome })),
    ),
    lastSuccess: new Gauge({
      name: 'avatarpipeline_reconciler_last_success_timestamp_seconds',
      help: 'When the last pass without errors finished (Unix time)',
      registers: [registry],
    }),
  };
}

export type ReconcilerMetrics = ReturnType<typeof reconcilerMetrics>;

/** What a pass reads and writes in the table. */
export type ReconcileStores = Pick<ProfileStores, 'uploads' | 'profiles' | 'records' | 'owners' | 'reviews' | 'tombstones' | 'subscriptions' | 'partitions'>;

export interface ReconcileDeps {
  stores: ReconcileStores;
  objects: ObjectStore;
  /** The broker (K_SINK). */
  sink: string;
  /** The OIDC token the broker requires (K_SINK_OIDC_TOKEN_FILE). */
  sinkTokenFile?: string | undefined;
  fetch?: typeof fetch;
  pendingTimeoutSeconds: number;
  processingTimeoutSeconds: number;
  reviewTimeoutSeconds: number;
  avatarRetainSeconds: number;
  metrics: ReconcilerMetrics;
  logger: Logger;
  /** The pass's own clock (cutoffs, ages); the stores keep theirs (`profileStores`). */
  clock?: Clock;
}

/**
 * The reconciler's dependencies from its configuration: the CronJob (reconcile-main.ts) and the
 * local stack's timer inside profile (start.ts) run the same pass.
 */
export function reconcileDeps(
  config: Pick<
    ReconcileConfig,
    | 'K_SINK'
    | 'K_SINK_OIDC_TOKEN_FILE'
    | 'UPLOAD_PENDING_TIMEOUT_SECONDS'
    | 'UPLOAD_PROCESSING_TIMEOUT_SECONDS'
    | 'REVIEW_TIMEOUT_SECONDS'
    | 'AVATAR_RETAIN_SECONDS'
  >,
  ports: Pick<ReconcileDeps, 'stores' | 'objects' | 'metrics' | 'logger'>,
): ReconcileDeps {
  return {
    ...ports,
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    pendingTimeoutSeconds: config.UPLOAD_PENDING_TIMEOUT_SECONDS,
    processingTimeoutSeconds: config.UPLOAD_PROCESSING_TIMEOUT_SECONDS,
    reviewTimeoutSeconds: config.REVIEW_TIMEOUT_SECONDS,
    avatarRetainSeconds: config.AVATAR_RETAIN_SECONDS,
  };
}

export interface ReconcileSummary {
  /** pending -> expired in this pass. */
  expired: number;
  /** processing -> failed (timeout) in this pass. */
  timedOut: number;
  /** in_review -> rejected (review_timeout) in this pass. */
  reviewsExpired: number;
  /** Ended by an earlier pass that did not get to announce them: announced now. */
  reannounced: number;
  /** Found overdue in the index but moved on or ended by the pipeline meanwhile: left alone. */
  skipped: number;
  orphansDeleted: Record<OrphanReason, number>;
  /** Superseded avatars whose objects were deleted. */
  avatarsDeleted: number;
  /** Erasures swept a last time. */
  erasuresFinished: number;
  /** Seconds since the oldest still-open upload's ticket was issued, per status (absent: none). */
  oldestOpenSeconds: Partial<Record<OpenStatus, number>>;
  /** Uploads or objects that could not be handled (retried by the next pass). */
  errors: number;
  durationMs: number;
}

/** What each open state becomes when it lasts too long. */
interface Rule {
  from: OpenStatus;
  to: 'expired' | 'failed' | 'rejected';
  reason: Reason;
  metric: EndReason;
  timeoutSeconds: (deps: ReconcileDeps) => number;
}

const rules: readonly Rule[] = [
  { from: 'pending', to: 'expired', reason: uploadExpired, metric: 'expired', timeoutSeconds: (d) => d.pendingTimeoutSeconds },
  { from: 'processing', to: 'failed', reason: processingTimedOut, metric: 'timeout', timeoutSeconds: (d) => d.processingTimeoutSeconds },
  { from: 'in_review', to: 'rejected', reason: reviewTimedOut, metric: 'review_timeout', timeoutSeconds: (d) => d.reviewTimeoutSeconds },
];

/**
 * The event telling the player how a reconciled upload ended: the same on every pass. `uploadedAt`:
 * when the object was uploaded, if known (a review keeps it); the record's creation otherwise.
 */
export function outcomeEvent(record: UploadRecord, uploadedAt: string = record.createdAt): OutgoingEvent {
  const { playerId, uploadId } = record;
  const base = { source: SOURCE, subject: uploadKey(playerId, uploadId), time: record.updatedAt };
  if (record.status === 'expired') {
    const data = expiredSchema.parse({ playerId, uploadId, createdAt: record.createdAt, reason: record.reason ?? uploadExpired });
    return { ...base, id: `${uploadId}.expired`, type: EventType.expired, data };
  }
  if (record.status === 'rejected') {
    // No labels: nobody judged the picture, the scores are not why it ended.
    const data = rejectedSchema.parse({ playerId, uploadId, uploadedAt, reason: record.reason ?? reviewTimedOut });
    return { ...base, id: `${uploadId}.rejected`, type: EventType.rejected, data };
  }
  // No object event started this upload's clock that we know of: its issue time stands in, as the dead-letter sink's fallback.
  const data = failedSchema.parse({ playerId, uploadId, uploadedAt, reason: record.reason ?? processingTimedOut });
  return { ...base, id: `${uploadId}.failed`, type: EventType.failed, data };
}

/** One pass; see the module comment. Never throws for one upload's or object's failure: it counts it. */
export async function reconcile(deps: ReconcileDeps): Promise<ReconcileSummary> {
  const { objects, metrics, logger } = deps;
  const { uploads, records, owners, profiles, reviews } = deps.stores;
  const clock = deps.clock ?? systemClock;
  const started = clock();
  const summary: ReconcileSummary = {
    expired: 0,
    timedOut: 0,
    reviewsExpired: 0,
    reannounced: 0,
    skipped: 0,
    orphansDeleted: { no_record: 0, ended: 0, invalid_key: 0 },
    avatarsDeleted: 0,
    erasuresFinished: 0,
    oldestOpenSeconds: {},
    errors: 0,
    durationMs: 0,
  };

  async function end(open: OpenUpload, rule: Rule, cutoff: Date): Promise<void> {
    const { playerId, uploadId } = open;
    const log = logger.child({ playerId, uploadId });
    const { changed, record, unannounced } = await uploads.endOverdue(playerId, uploadId, rule.from, rule.to, cutoff, rule.reason);
    if (!record || (!changed && !unannounced)) {
      summary.skipped += 1;
      log.info({ status: record?.status ?? 'unknown' }, 'upload moved on meanwhile; left alone');
      return;
    }
    if (changed) {
      metrics.ended.inc({ reason: rule.metric });
      if (rule.to === 'expired') summary.expired += 1;
      else if (rule.to === 'rejected') summary.reviewsExpired += 1;
      else summary.timedOut += 1;
      log.info({ from: rule.from, status: record.status, reason: record.reason?.code }, 'overdue upload ended');
    } else {
      summary.reannounced += 1;
      log.warn({ status: record.status }, 'upload ended by an earlier pass was not announced; announcing it now');
    }
    // The review ends with its upload (a moderator's decision now finds it over); again on a re-run.
    const review = record.status === 'rejected' ? await reviews.expire(uploadId, clock()) : undefined;
    // A late upload under the key is never moderated, nor is a timed-out review's original ever
    // rendered; a failed upload's renditions must not stay public.
    await objects.delete(uploadKey(playerId, uploadId));
    if (record.status === 'failed') await deleteRenditions(objects, playerId, uploadId);
    const event = outcomeEvent(record, review?.uploadedAt);
    await sendEvent(deps.sink, event, { fetch: deps.fetch, tokenFile: deps.sinkTokenFile });
    await uploads.announced(playerId, uploadId, record.status as Rule['to']);
    log.info({ eventId: event.id, eventType: event.type }, 'outcome announced');
  }

  for (const rule of rules) {
    const cutoff = new Date(started.getTime() - rule.timeoutSeconds(deps) * 1000);
    try {
      for await (const open of uploads.openUploads(rule.from, cutoff)) {
        try {
          await end(open, rule, cutoff);
        } catch (err) {
          summary.errors += 1;
          logger.error({ err, playerId: open.playerId, uploadId: open.uploadId, from: rule.from }, 'could not end an overdue upload; the next pass retries');
        }
      }
    } catch (err) {
      summary.errors += 1;
      logger.error({ err, status: rule.from }, 'could not query the open uploads');
    }
  }

  // Objects nobody will ever handle: what an upload that is over left (or got late), and strays.
  try {
    for await (const key of objects.list(UPLOAD_PREFIX)) {
      try {
        const reason = await orphanReason(uploads, key);
        if (!reason) continue;
        await objects.delete(key);
        summary.orphansDeleted[reason] += 1;
        metrics.orphans.inc({ reason });
        logger.info({ key, reason }, 'deleted an object under uploads/ that nothing will handle');
      } catch (err) {
        summary.errors += 1;
        logger.error({ err, key }, 'could not check or delete an object under uploads/');
      }
    }
  } catch (err) {
    summary.errors += 1;
    logger.error({ err }, 'could not list uploads/');
  }

  // Superseded avatars past their retention: CDN caches have let them go.
  try {
    for await (const old of records.superseded(new Date(started.getTime() - deps.avatarRetainSeconds * 1000))) {
      const { playerId, uploadId } = old;
      try {
        // Superseded ids only ever trail the current one; never delete what a profile serves.
        if ((await profiles.get(playerId))?.avatarUploadId === uploadId) {
          logger.warn({ playerId, uploadId }, 'a superseded avatar is the current one; kept');
        } else {
          await deleteRenditions(objects, playerId, uploadId);
          await owners.delete(uploadId);
          summary.avatarsDeleted += 1;
          metrics.avatarsDeleted.inc();
          logger.info({ playerId, uploadId, supersededAt: old.openSince }, 'superseded avatar deleted');
        }
        await records.retired(playerId, uploadId);
      } catch (err) {
        summary.errors += 1;
        logger.error({ err, playerId, uploadId }, 'could not delete a superseded avatar; the next pass retries');
      }
    }
  } catch (err) {
    summary.errors += 1;
    logger.error({ err }, 'could not query the superseded avatars');
  }

  // Erasures whose in-flight window has passed: anything a step begun before them wrote since goes.
  const erasure: ErasureDeps = {
    objects,
    partitions: deps.stores.partitions,
    tombstones: deps.stores.tombstones,
    subscriptions: deps.stores.subscriptions,
    owners,
    sink: deps.sink,
    sinkTokenFile: deps.sinkTokenFile,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  };
  try {
    for await (const playerId of erasure.tombstones.due(new Date(started.getTime() - deps.processingTimeoutSeconds * 1000))) {
      const log = logger.child({ playerId });
      try {
        const tombstone = await erasure.tombstones.get(playerId);
        if (!tombstone) continue;
        const swept = await sweep(erasure, playerId, tombstone, log);
        const announced = await announceErasure(erasure, tombstone);
        await erasure.tombstones.settled(tombstone);
        summary.erasuresFinished += 1;
        metrics.erasuresFinished.inc();
        log.info({ erasedAt: tombstone.erasedAt, objects: swept.objects, announced }, 'erasure finished');
      } catch (err) {
        summary.errors += 1;
        log.error({ err }, 'could not finish an erasure; the next pass retries');
      }
    }
  } catch (err) {
    summary.errors += 1;
    logger.error({ err }, 'could not query the erasures');
  }

  for (const status of openStatuses) {
    try {
      const oldest = await uploads.oldestOpen(status);
      const seconds = oldest ? Math.max(0, Math.round((clock().getTime() - Date.parse(oldest.createdAt)) / 1000)) : undefined;
      metrics.oldest.set({ status }, seconds ?? 0);
      if (seconds !== undefined) summary.oldestOpenSeconds[status] = seconds;
    } catch (err) {
      summary.errors += 1;
      logger.error({ err, status }, 'could not read the oldest open upload');
    }
  }

  const finished = clock();
  summary.durationMs = finished.getTime() - started.getTime();
  metrics.runs.inc({ outcome: summary.errors === 0 ? 'ok' : 'error' });
  if (summary.errors === 0) metrics.lastSuccess.set(finished.getTime() / 1000);
  return summary;
}

/** Why an object under uploads/ is to be deleted, or undefined when its upload may still need it. */
async function orphanReason(uploads: UploadStore, key: string): Promise<OrphanReason | undefined> {
  const ids = parseUploadKey(key);
  if (!ids) return 'invalid_key';
  // The record is written before the ticket is issued, so no object precedes its record.
  const record = await uploads.get(ids.playerId, ids.uploadId);
  if (!record) return 'no_record';
  return isTerminal(record.status) ? 'ended' : undefined;
}

export interface ReconcileTimer {
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` now and then every `periodMs` after the previous one finished (passes never overlap):
 * the local stack's stand-in for the CronJob.
 */
export function startReconcileTimer(pass: () => Promise<unknown>, periodMs: number, logger: Logger): ReconcileTimer {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = pass()
      .then(
        () => undefined,
        (err: unknown) => logger.error({ err }, 'reconcile pass failed'),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, periodMs);
      });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Logs a pass's summary: the CronJob's result (its metrics live only as long as its pod). */
export function logSummary(logger: Logger, summary: ReconcileSummary, quietWhenIdle = false): void {
  const acted =
    summary.expired +
    summary.timedOut +
    summary.reviewsExpired +
    summary.reannounced +
    summary.skipped +
    summary.avatarsDeleted +
    summary.erasuresFinished +
    Object.values(summary.orphansDeleted).reduce((a, b) => a + b, 0);
  const level = summary.errors > 0 ? 'error' : acted === 0 && quietWhenIdle ? 'debug' : 'info';
  logger[level]({ summary }, 'reconcile pass finished');
}
