/**
 * The per-upload decision flow: an S3 object-created event for `uploads/<playerId>/<uploadId>` is
 * checked (checks.ts), decoded into views (views.ts), matched against the ban list and judged by
 * the provider under the policy (policy.ts); outcomes.ts records and announces what was decided.
 *
 * Redeliveries: the same event gets the reply it got the first time (ProcessedEvents). A
 * different event for an upload that is already over gets no new work: the object under its key
 * is deleted (a later write was never moderated), and for a rejected upload the same
 * `<uploadId>.rejected` reply is rebuilt from the record (consumers dedupe it by id, so no second
 * notification); a ready or failed upload gets no reply. An upload still pending or processing
 * is moderated (again): the reply ids are fixed per upload, and `UploadStore.finish` lets exactly
 * one terminal state win.
 *
 * The first approved bytes decide an upload: their SHA-256 goes on the record and in the approved
 * event, and thumbnail renders only bytes with that hash. A later write under the key (a reused or
 * retried presigned POST) with other bytes is then neither moderated nor allowed to reject the
 * upload; its object is left for the upload's end to delete (thumbnail once it has rendered, profile
 * at ready, the dead-letter sink at failed), since thumbnail must still see it to tell a replaced
 * original from a rendered one.
 */
import { decodeProblem, fingerprint, imageLimits } from '@avatar-pipeline/imaging';
import type { BanList } from '@avatar-pipeline/kit/bans';
import { on, PermanentEventError, type OutgoingEvent, type ReceivedEvent } from '@avatar-pipeline/kit/cloudevents';
import { approvedSchema, bannedPicture, parseUploadKey, s3EntitySchema, type S3Entity } from '@avatar-pipeline/kit/events';
import type { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { contentSha256, type ObjectStore } from '@avatar-pipeline/kit/objects';
import { isTerminal, type UploadRecord, type UploadStore } from '@avatar-pipeline/kit/table';
import { S3_OBJECT_CREATED_PREFIX, UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';
import type { ModerateAppConfig } from './app.js';
import { checkImage, fetchUpload } from './checks.js';
import type { ModerationMetrics } from './metrics.js';
import type { ModerationOutcomes, Upload } from './outcomes.js';
import { decide, type Policy } from './policy.js';
import type { ModerationProvider } from './providers/provider.js';
import { decodeForModeration, type ModerationDecode } from './views.js';

export interface ModerationDeps {
  config: Omit<ModerateAppConfig, 'MODERATION_POLICY'>;
  objects: Pick<ObjectStore, 'bucket' | 'getPinned' | 'delete'>;
  provider: ModerationProvider;
  uploads: Pick<UploadStore, 'get' | 'markProcessing'>;
  processed: Pick<ProcessedEvents, 'once'>;
  bans: Pick<BanList, 'match' | 'add'>;
  metrics: ModerationMetrics;
  policy: Policy;
  outcomes: ModerationOutcomes;
}

/** The route for S3 object-created events: every object written under the bucket. */
export function objectCreatedRoute(deps: ModerationDeps) {
  const { config, objects, provider, uploads, processed, bans, metrics, policy } = deps;
  const { settled, laterWrite, reject, invalid, sendToReview, approve } = deps.outcomes;

  async function moderate(
    target: Omit<Upload, 'uploadedAt'>,
    event: ReceivedEvent<S3Entity>,
    log: Logger,
    recordRead: Promise<UploadRecord | undefined>,
  ): Promise<OutgoingEvent | undefined> {
    const record = await recordRead;
    if (!record) {
      // Only presign creates upload records: an object without one was never handed out.
      await objects.delete(target.key);
      log.warn({ key: target.key }, 'no upload record for this object; deleted it');
      return undefined;
    }
    // The S3 event time; sources always set it, the record's creation is a deterministic fallback.
    const upload: Upload = { ...target, uploadedAt: event.time ?? record.createdAt };
    if (isTerminal(record.status)) return settled(upload, record, log);

    const limits = { ...imageLimits(config), maxBytes: Math.min(config.AVATAR_MAX_BYTES, record.maxBytes) };
    // Both before anything is decided: the mark (a conditional pending -> processing that the
    // terminal writes below do not depend on) and the download are independent, so they overlap
    // instead of costing a round trip each.
    // Both are waited for, whichever fails: nothing is left running once the delivery is answered.
    const [marked, download] = await Promise.allSettled([
      uploads.markProcessing(upload.playerId, upload.uploadId),
      fetchUpload(objects, { key: upload.key, eTag: event.data.object.eTag, maxBytes: limits.maxBytes }),
    ]);
    if (marked.status === 'rejected') throw marked.reason;
    if (download.status === 'rejected') throw download.reason;
    const fetched = download.value;
    if (fetched.kind === 'stale') {
      log.info('the object was replaced after this event; the newer write is handled under its own event');
      return undefined;
    }
    if (fetched.kind === 'missing') {
      const now = await uploads.get(upload.playerId, upload.uploadId);
      if (now && isTerminal(now.status)) return settled(upload, now, log);
      // Bytes were approved before: this event's write came later and was deleted since (thumbnail
      // deletes whatever the key holds once it has rendered), which is no reason to fail the upload.
      if (now?.sha256) return laterWrite(log);
      throw new PermanentEventError('object_missing', `upload ${upload.key} has no object to moderate`);
    }
    if (fetched.kind === 'invalid') return invalid(upload, fetched.problem, undefined, log);

    // Exactly the bytes checked and classified below, so what is rendered can be proven to be them.
    const sha256 = contentSha256(fetched.body);
    if (record.sha256 !== undefined && record.sha256 !== sha256) return laterWrite(log);

    const checked = await checkImage(fetched.body, record.contentType, limits);
    if (!checked.ok) return invalid(upload, checked.problem, sha256, log);
    const { image } = checked;

    const endTimer = metrics.duration.startTimer({ provider: provider.name });
    let decoded: ModerationDecode;
    try {
      // The one decode of the pixels (checkImage read the headers): a damaged image fails here.
      decoded = await decodeForModeration(fetched.body, image, { crop: config.THUMBNAIL_CROP, shape: provider.viewShape, limits });
    } catch (err) {
      return invalid(upload, decodeProblem(err), sha256, log);
    }
    const { views, square } = decoded;
    // The picture's fingerprint, from the pixels just decoded: a banned picture, even resized or
    // recompressed, is refused before the model runs.
    const print = await fingerprint(decoded.decoded);
    const ban = await bans.match(print, config.BAN_MAX_DISTANCE);
    if (ban) {
      log.info({ ban: ban.id }, 'a banned picture');
      return reject(upload, 'banned', bannedPicture, undefined, sha256, log);
    }
    for (const view of views) metrics.views.inc({ region: view.region, background: view.background });
    const labels = await provider.moderate({
      bucket: upload.bucket,
      key: upload.key,
      image: fetched.body,
      format: image.format,
      width: image.width,
      height: image.height,
      views,
    });
    endTimer();

    const decision = decide(labels, policy);
    if (decision.outcome === 'rejected') {
      // Banned before the record says rejected: a retry after a crash in between bans again (idempotent) rather than never.
      await bans.add({ fingerprint: print, uploadId: upload.uploadId, reason: 'moderation', by: 'moderate', labels: decision.deciding });
      return reject(upload, 'rejected', decision.reason, decision.deciding, sha256, log);
    }
    const data = approvedSchema.parse({
      playerId: upload.playerId,
      uploadId: upload.uploadId,
      uploadedAt: upload.uploadedAt,
      bucket: upload.bucket,
      key: upload.key,
      eTag: fetched.eTag,
      sha256,
      contentType: image.contentType,
      width: image.width,
      height: image.height,
      square,
      provider: provider.name,
      labels,
    });
    if (decision.outcome === 'review') return sendToReview(upload, data, print, log);
    return approve(upload, data, print, log);
  }

  async function onObjectCreated(event: ReceivedEvent<S3Entity>, { log }: { log: Logger }): Promise<OutgoingEvent | undefined> {
    const bucket = event.data.bucket.name;
    // s3-source has already URL-decoded the key.
    const key = event.data.object.key;
    if (bucket !== objects.bucket) {
      log.warn({ bucket }, 'event for another bucket; ignored');
      return undefined;
    }
    const ids = parseUploadKey(key);
    if (!ids) {
      // Nobody may park files in uploads/; anything elsewhere (derived avatars) is not ours to touch.
      if (key.startsWith(UPLOAD_PREFIX)) {
        await objects.delete(key);
        log.warn({ key }, 'not a valid upload key; deleted the object');
      } else {
        log.warn({ key }, 'not an upload key; ignored');
      }
      return undefined;
    }
    const uploadLog = log.child(ids);
    // The record is read while the idempotency lookup runs (one round trip instead of two). A
    // duplicate never uses it; a concurrent delivery is covered as before, every decision being a
    // conditional write on the record.
    const recordRead = uploads.get(ids.playerId, ids.uploadId);
    recordRead.catch(() => undefined);
    const { reply, duplicate } = await processed.once(event, () => moderate({ ...ids, bucket, key }, event, uploadLog, recordRead));
    if (duplicate) uploadLog.info('event already handled; same reply');
    return reply;
  }

  return on(`${S3_OBJECT_CREATED_PREFIX}*`, s3EntitySchema, onObjectCreated);
}
