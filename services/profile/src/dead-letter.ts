/**
 * The dead-letter sink of the whole topology. An event that exhausted its retries is either a
 * processing-stage event (the upload can never finish: it ends failed, its unmoderated original
 * and any renditions are deleted and `avatarpipeline.avatar.failed` is announced) or a
 * notification push could not take (counted and logged only). A `thumbnailed` event whose upload
 * already ended ready (profile's later writes kept failing) is finished instead: the profile
 * write and the Cognito mirror are completed and `avatarpipeline.avatar.ready` is announced, the
 * same event the reply would have been. Answers 2xx unless a transient error makes a retry
 * worthwhile.
 */
import { z } from 'zod';
import { on, sendEvent, type OutgoingEvent, type ReceivedEvent } from '@avatar-pipeline/kit/cloudevents';
import { objectReplaced, parseUploadKey, playerIdSchema, s3EntitySchema, uploadIdSchema, uploadKey, type FailedData, type Reason } from '@avatar-pipeline/kit/events';
import type { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { labelCombinations } from '@avatar-pipeline/kit/metrics';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import type { UploadRecord, UploadStore } from '@avatar-pipeline/kit/table';
import { EventType, S3_OBJECT_CREATED_PREFIX, eventTypeLabel } from '@avatar-pipeline/kit/topology';
import { deleteRenditions } from './avatar.js';
import type { ProfileMetrics } from './metrics.js';
import type { ProfileStore } from './profiles.js';
import { SOURCE, discardUnrecorded, readyEvent, type CompleteReady } from './ready.js';

/** The step each processing-stage event was on its way to, by the event's type label. */
const processingSteps: Readonly<Record<string, string>> = {
  [`${S3_OBJECT_CREATED_PREFIX}*`]: 'Moderation',
  [EventType.approved]: 'Thumbnail generation',
  [EventType.thumbnailed]: 'Profile update',
};

/** What push consumes: a dead one is only counted (the upload's state does not depend on it). */
const notificationTypes: readonly string[] = [EventType.ready, EventType.rejected, EventType.failed, EventType.expired, EventType.reviewRequested];

/** What became of a processing-stage dead letter; a notification or any other event is only `logged`. */
const processingOutcomes = ['failed', 'ready', 'already_ended', 'unknown_upload', 'duplicate', 'unidentified'] as const;
type Outcome = (typeof processingOutcomes)[number] | 'logged';

/** Every label set `avatarpipeline_deadletter_events_total` can take (exported at 0 from the start). */
export const deadLetterSeries: readonly Record<'type' | 'stage' | 'outcome', string>[] = [
  ...labelCombinations({ type: Object.keys(processingSteps), stage: ['processing'], outcome: processingOutcomes }),
  ...labelCombinations({ type: notificationTypes, stage: ['notification'], outcome: ['logged'] }),
  { type: 'other', stage: 'other', outcome: 'logged' },
];

const uploadRefSchema = z.object({ playerId: playerIdSchema, uploadId: uploadIdSchema, uploadedAt: z.iso.datetime({ offset: true }).optional() });

export interface UploadRef {
  playerId: string;
  uploadId: string;
  uploadedAt?: string | undefined;
}

/** Domain events name the upload in their data; S3 events in the subject or the object key. */
export function identifyUpload(event: Pick<ReceivedEvent<unknown>, 'subject' | 'data'>): UploadRef | undefined {
  const ref = uploadRefSchema.safeParse(event.data);
  if (ref.success) return ref.data;
  const key = event.subject ?? s3EntitySchema.safeParse(event.data).data?.object.key;
  return key === undefined ? undefined : parseUploadKey(key);
}

/** What Knative says about the last attempt: HTTP status, and our error code if the body had one. */
export function lastAttempt(extensions: Readonly<Record<string, unknown>>): { status?: number; code?: string } {
  const status = Number(extensions['knativeerrorcode']);
  const result: { status?: number; code?: string } = Number.isInteger(status) && status >= 100 && status < 600 ? { status } : {};
  const data = extensions['knativeerrordata'];
  if (typeof data !== 'string' || data === '') return result;
  // Knative's brokers base64-encode the body; accept it raw too.
  for (const body of [Buffer.from(data, 'base64').toString('utf8'), data]) {
    try {
      const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
      if (typeof code === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(code)) return { ...result, code };
    } catch {
      // Not JSON in this encoding.
    }
  }
  return result;
}

/** The reason the player sees: the step and the status, no internals. */
export function failureReason(step: string, attempt: { status?: number; code?: string }): Reason {
  // The player's own later write replaced the moderated bytes: that, not a processing fault, is why.
  if (attempt.code === objectReplaced.code) return objectReplaced;
  const detail = attempt.status === undefined ? '' : ` (HTTP ${attempt.status}${attempt.code ? `: ${attempt.code}` : ''})`;
  return { code: 'processing_failed', message: `${step} failed after retries${detail}` };
}

/**
 * The ids the sink settles an upload's dead letters under (with SOURCE): one per upload, and one of
 * its own for `thumbnailed` (see `settled`).
 */
function deadLetterIds(playerId: string, uploadId: string): [upload: string, thumbnailed: string] {
  const id = uploadKey(playerId, uploadId);
  return [id, `${id}#thumbnailed`];
}

export interface DeadLetterDeps {
  sink: string;
  /** The OIDC token the broker requires (K_SINK_OIDC_TOKEN_FILE). */
  sinkTokenFile?: string | undefined;
  uploads: UploadStore;
  /** Whose current avatar an upload without a record may still be (its renditions then stay). */
  profiles: Pick<ProfileStore, 'get'>;
  objects: ObjectStore;
  /**
   * Keyed per upload: the first dead letter of an upload settles it, later ones find it done. A
   * `thumbnailed` dead letter has a key of its own per upload, so an earlier dead letter of another
   * stage (recorded as `already_ended` for a ready upload) never keeps it from announcing ready.
   */
  settled: ProcessedEvents;
  /** Profile's own completion of a ready upload (`readyCompletion`). */
  complete: CompleteReady;
  metrics: ProfileMetrics;
  fetch?: typeof fetch;
}

export function deadLetterRoute(deps: DeadLetterDeps) {
  const { uploads, settled, metrics } = deps;

  /** Failed by this sink, the only writer of its reasons, so a retry can finish the job. */
  const failedHere = (record: UploadRecord) =>
    record.status === 'failed' && (record.reason?.code === 'processing_failed' || record.reason?.code === objectReplaced.code);

  const send = (event: ReceivedEvent<unknown>, outgoing: OutgoingEvent) =>
    sendEvent(deps.sink, { ...outgoing, ...(event.traceparent ? { traceparent: event.traceparent, tracestate: event.tracestate } : {}) }, { fetch: deps.fetch, tokenFile: deps.sinkTokenFile });

  /**
   * A ready upload whose `thumbnailed` event exhausted its retries: profile made it ready, then
   * failed on a later step every time. Those steps are completed if they can be, and ready is
   * announced in any case (the player's upload did succeed); when the profile write still fails,
   * the answer is 5xx after the announcement, so the dead letter is retried to finish it (and the
   * same ready event, the same id, goes out again: push takes it once).
   */
  async function announceReady(event: ReceivedEvent<unknown>, upload: UploadRef, record: UploadRecord, log: Logger): Promise<Outcome> {
    // The thumbnailed handler writes the avatar with the status, in the same conditional write.
    if (!record.avatar) return 'already_ended';
    let incomplete: unknown;
    try {
      // Its player was erased meanwhile: nothing is left to announce.
      if ((await deps.complete(record, record.avatar, log)) === 'erased') return 'already_ended';
    } catch (err) {
      incomplete = err;
      log.warn({ playerId: upload.playerId, uploadId: upload.uploadId, err }, 'could not complete the profile of a ready upload; announcing ready anyway');
    }
    await send(event, readyEvent(record, record.avatar, upload.uploadedAt ?? event.time ?? record.createdAt));
    if (incomplete !== undefined) throw incomplete;
    return 'ready';
  }

  async function settle(event: ReceivedEvent<unknown>, upload: UploadRef, reason: Reason, log: Logger): Promise<Outcome> {
    const { playerId, uploadId } = upload;
    const key = uploadKey(playerId, uploadId);
    const { changed, record } = await uploads.finish(playerId, uploadId, 'failed', { reason });
    if (record && !changed && !failedHere(record)) {
      if (record.status === 'ready') return event.type === EventType.thumbnailed ? announceReady(event, upload, record, log) : 'already_ended';
      await deleteRenditions(deps.objects, playerId, uploadId);
      return 'already_ended';
    }
    // No record (erased, expired or never issued): nothing to announce, but nothing of it may
    // linger either, except renditions that are the current avatar (a record past its TTL).
    if (!record) {
      await discardUnrecorded(deps, playerId, uploadId);
      return 'unknown_upload';
    }
    await deps.objects.delete(key);
    await deleteRenditions(deps.objects, playerId, uploadId);

    const data: FailedData = {
      playerId,
      uploadId,
      uploadedAt: upload.uploadedAt ?? event.time ?? record.createdAt,
      reason: record.reason ?? reason,
      failedEventType: event.type,
    };
    await send(event, { id: `${uploadId}.failed`, source: SOURCE, type: EventType.failed, subject: key, data });
    return 'failed';
  }

  return on('*', z.unknown(), async (event, { log }) => {
    const type = eventTypeLabel(event.type);
    const step = processingSteps[type];
    const stage = step ? 'processing' : notificationTypes.includes(type) ? 'notification' : 'other';
    const upload = identifyUpload(event);
    const attempt = lastAttempt(event.extensions);

    let outcome: Outcome = 'logged';
    if (step && upload) {
      outcome = 'duplicate';
      const [perUpload, thumbnailed] = deadLetterIds(upload.playerId, upload.uploadId);
      const id = event.type === EventType.thumbnailed ? thumbnailed : perUpload;
      await settled.once({ source: SOURCE, id, subject: uploadKey(upload.playerId, upload.uploadId) }, async () => {
        outcome = await settle(event, upload, failureReason(step, attempt), log);
        return undefined;
      });
    } else if (step) {
      outcome = 'unidentified';
    }
    metrics.deadLetters.inc({ type, stage, outcome });
    const dest = event.extensions['knativeerrordest'];
    log.warn({ stage, outcome, dest, lastStatus: attempt.status, lastCode: attempt.code, ...upload }, 'dead letter handled');
    return undefined;
  });
}
