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
 * - every object under `uploads/` without an upload record, with a key presign never issues, or of
 *   an upload that is over, is deleted (nothing will ever read it; moderate would only delete it).
 *
 * A pass records metrics (`reconcilerMetrics`) and returns a summary, which the CronJob logs as its
 * result; any failure is counted and logged, and the pass goes on with the next upload.
 */
import { DeleteObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  EventType,
  UPLOAD_PREFIX,
  UploadStore,
  avatarPrefix,
  deletePrefix,
  expiredSchema,
  failedSchema,
  isTerminal,
  parseUploadKey,
  processingTimedOut,
  sendEvent,
  systemClock,
  uploadExpired,
  uploadKey,
  zeroed,
  type Clock,
  type Logger,
  type OpenStatus,
  type OpenUpload,
  type OutgoingEvent,
  type Reason,
  type UploadRecord,
} from '@avatar-pipeline/kit';
import type { ReconcileConfig } from './reconcile-config.js';
import { SOURCE } from './ready.js';

export const endReasons = ['expired', 'timeout'] as const;
export type EndReason = (typeof endReasons)[number];
export const orphanReasons = ['no_record', 'ended', 'invalid_key'] as const;
export type OrphanReason = (typeof orphanReasons)[number];

/** The reconciler's metrics (every label value from a fixed set, each counter's series exported from the start). */
export function reconcilerMetrics(registry: Registry) {
  return {
    ended: zeroed(
      new Counter<'reason'>({
        name: 'avatarpipeline_reconciler_uploads_ended_total',
        help: 'Uploads the reconciler ended, by reason (expired: pending past its ticket; timeout: processing too long, failed)',
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
    oldest: new Gauge<'status'>({
      name: 'avatarpipeline_reconciler_oldest_open_upload_seconds',
      help: 'Age (since its ticket was issued) of the oldest upload still pending or processing after the last pass, by status; 0 when none',
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

export interface ReconcileDeps {
  uploads: UploadStore;
  s3: S3Client;
  bucket: string;
  /** The broker (K_SINK). */
  sink: string;
  /** The OIDC token the broker requires (K_SINK_OIDC_TOKEN_FILE). */
  sinkTokenFile?: string | undefined;
  fetch?: typeof fetch;
  pendingTimeoutSeconds: number;
  processingTimeoutSeconds: number;
  metrics: ReconcilerMetrics;
  logger: Logger;
  clock?: Clock;
}

/**
 * The reconciler's dependencies from its configuration: the CronJob (reconcile-main.ts) and the
 * local stack's timer inside profile (start.ts) run the same pass.
 */
export function reconcileDeps(
  config: Pick<ReconcileConfig, 'TABLE_NAME' | 'BUCKET' | 'K_SINK' | 'K_SINK_OIDC_TOKEN_FILE' | 'UPLOAD_PENDING_TIMEOUT_SECONDS' | 'UPLOAD_PROCESSING_TIMEOUT_SECONDS'>,
  clients: { doc: DynamoDBDocumentClient; s3: S3Client; metrics: ReconcilerMetrics; logger: Logger },
): ReconcileDeps {
  return {
    uploads: new UploadStore(clients.doc, config.TABLE_NAME),
    s3: clients.s3,
    bucket: config.BUCKET,
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    pendingTimeoutSeconds: config.UPLOAD_PENDING_TIMEOUT_SECONDS,
    processingTimeoutSeconds: config.UPLOAD_PROCESSING_TIMEOUT_SECONDS,
    metrics: clients.metrics,
    logger: clients.logger,
  };
}

export interface ReconcileSummary {
  /** pending -> expired in this pass. */
  expired: number;
  /** processing -> failed (timeout) in this pass. */
  timedOut: number;
  /** Ended by an earlier pass that did not get to announce them: announced now. */
  reannounced: number;
  /** Found overdue in the index but moved on or ended by the pipeline meanwhile: left alone. */
  skipped: number;
  orphansDeleted: Record<OrphanReason, number>;
  /** Seconds since the oldest still-open upload's ticket was issued, per status (absent: none). */
  oldestOpenSeconds: Partial<Record<OpenStatus, number>>;
  /** Uploads or objects that could not be handled (retried by the next pass). */
  errors: number;
  durationMs: number;
}

/** What each open state becomes when it lasts too long. */
interface Rule {
  from: OpenStatus;
  to: 'expired' | 'failed';
  reason: Reason;
  metric: EndReason;
  timeoutSeconds: (deps: ReconcileDeps) => number;
}

const rules: readonly Rule[] = [
  { from: 'pending', to: 'expired', reason: uploadExpired, metric: 'expired', timeoutSeconds: (d) => d.pendingTimeoutSeconds },
  { from: 'processing', to: 'failed', reason: processingTimedOut, metric: 'timeout', timeoutSeconds: (d) => d.processingTimeoutSeconds },
];

/** The event telling the player how a reconciled upload ended: the same on every pass. */
export function outcomeEvent(record: UploadRecord): OutgoingEvent {
  const { playerId, uploadId } = record;
  const base = { source: SOURCE, subject: uploadKey(playerId, uploadId), time: record.updatedAt };
  if (record.status === 'expired') {
    const data = expiredSchema.parse({ playerId, uploadId, createdAt: record.createdAt, reason: record.reason ?? uploadExpired });
    return { ...base, id: `${uploadId}.expired`, type: EventType.expired, data };
  }
  // No object event started this upload's clock that we know of: its issue time stands in, as the dead-letter sink's fallback.
  const data = failedSchema.parse({ playerId, uploadId, uploadedAt: record.createdAt, reason: record.reason ?? processingTimedOut });
  return { ...base, id: `${uploadId}.failed`, type: EventType.failed, data };
}

/** One pass; see the module comment. Never throws for one upload's or object's failure: it counts it. */
export async function reconcile(deps: ReconcileDeps): Promise<ReconcileSummary> {
  const { uploads, s3, bucket, metrics, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const started = clock();
  const summary: ReconcileSummary = {
    expired: 0,
    timedOut: 0,
    reannounced: 0,
    skipped: 0,
    orphansDeleted: { no_record: 0, ended: 0, invalid_key: 0 },
    oldestOpenSeconds: {},
    errors: 0,
    durationMs: 0,
  };
  const deleteObject = (key: string) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

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
      else summary.timedOut += 1;
      log.info({ from: rule.from, status: record.status, reason: record.reason?.code }, 'overdue upload ended');
    } else {
      summary.reannounced += 1;
      log.warn({ status: record.status }, 'upload ended by an earlier pass was not announced; announcing it now');
    }
    // A late upload under the key is never moderated; a failed upload's renditions must not stay public.
    await deleteObject(uploadKey(playerId, uploadId));
    if (record.status === 'failed') await deletePrefix(s3, bucket, avatarPrefix(playerId, uploadId));
    const event = outcomeEvent(record);
    await sendEvent(deps.sink, event, { fetch: deps.fetch, tokenFile: deps.sinkTokenFile });
    await uploads.announced(playerId, uploadId, record.status as 'expired' | 'failed');
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
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: UPLOAD_PREFIX, ...(token ? { ContinuationToken: token } : {}) }));
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        try {
          const reason = await orphanReason(uploads, object.Key);
          if (!reason) continue;
          await deleteObject(object.Key);
          summary.orphansDeleted[reason] += 1;
          metrics.orphans.inc({ reason });
          logger.info({ key: object.Key, reason }, 'deleted an object under uploads/ that nothing will handle');
        } catch (err) {
          summary.errors += 1;
          logger.error({ err, key: object.Key }, 'could not check or delete an object under uploads/');
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (err) {
    summary.errors += 1;
    logger.error({ err }, 'could not list uploads/');
  }

  for (const status of ['pending', 'processing'] as const) {
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
  const acted = summary.expired + summary.timedOut + summary.reannounced + summary.skipped + Object.values(summary.orphansDeleted).reduce((a, b) => a + b, 0);
  const level = summary.errors > 0 ? 'error' : acted === 0 && quietWhenIdle ? 'debug' : 'info';
  logger[level]({ summary }, 'reconcile pass finished');
}
