/**
 * moderate: decides whether an uploaded avatar may be used. It consumes S3 object-created events
 * for `uploads/<playerId>/<uploadId>` and replies `avatarpipeline.avatar.approved`,
 * `avatarpipeline.avatar.rejected`, or (the policy's review band) `avatarpipeline.avatar.review_requested`
 * with the upload left `in_review` for a moderator; a rejected upload's object is deleted and its
 * record ends `rejected`. Each picture's perceptual hash (fingerprint) is checked against the ban
 * list before the model runs, and a picture the policy rejects is banned. Transient failures (S3,
 * DynamoDB, the provider) answer 500 so the broker retries.
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
import type { S3Client } from '@aws-sdk/client-s3';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { decodeProblem, fingerprint, imageLimits, type ImageProblem } from '@avatar-pipeline/imaging';
import {
  approvedSchema,
  BanList,
  bannedPicture,
  bucketReadiness,
  contentSha256,
  createService,
  eventEndpoint,
  EventType,
  isTerminal,
  on,
  parseUploadKey,
  PermanentEventError,
  ProcessedEvents,
  rejectedSchema,
  reviewRequestedSchema,
  S3_OBJECT_CREATED_PREFIX,
  s3EntitySchema,
  systemClock,
  tableReadiness,
  UPLOAD_PREFIX,
  UploadOwners,
  UploadStore,
  type ApprovedData,
  type Clock,
  type Logger,
  type ModerationLabel,
  type OutgoingEvent,
  type Reason,
  type ReceivedEvent,
  type S3Entity,
  type Service,
  type TokenPolicy,
  type UploadRecord,
} from '@avatar-pipeline/kit';
import { checkImage, fetchUpload } from './checks.js';
import { moderationPolicy, type ModerateConfig } from './config.js';
import { moderationMetrics, type DecisionOutcome } from './metrics.js';
import { decide } from './policy.js';
import type { ModerationProvider } from './providers/provider.js';
import { decodeForModeration, type ModerationDecode } from './views.js';

export const SOURCE = '/avatar-pipeline/moderate';

export type ModerateAppConfig = Pick<
  ModerateConfig,
  | 'TABLE_NAME'
  | 'BUCKET'
  | 'AVATAR_MAX_BYTES'
  | 'IMAGE_MAX_PIXELS'
  | 'IMAGE_MAX_SIDE'
  | 'IMAGE_MIN_SIDE'
  | 'IMAGE_MAX_ASPECT'
  | 'THUMBNAIL_CROP'
  | 'MODERATION_POLICY'
  | 'BAN_MAX_DISTANCE'
>;

export interface ModerateDeps {
  config: ModerateAppConfig;
  s3: S3Client;
  doc: DynamoDBDocumentClient;
  provider: ModerationProvider;
  logger: Logger;
  clock?: Clock;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

interface Upload {
  playerId: string;
  uploadId: string;
  bucket: string;
  key: string;
  /** The S3 event time: when the pipeline clock started. */
  uploadedAt: string;
}

export function createModerateApp(deps: ModerateDeps): Service {
  const { config, s3, provider, logger } = deps;
  const clock = deps.clock ?? systemClock;
  // The provider (the model) is loaded before the app exists, so readiness covers the stores.
  const service = createService({
    name: 'moderate',
    logger,
    readiness: { dynamodb: tableReadiness(deps.doc, config.TABLE_NAME), s3: bucketReadiness(s3, config.BUCKET) },
    eventAuth: deps.eventAuth,
  });
  const uploads = new UploadStore(deps.doc, config.TABLE_NAME, clock);
  const processed = new ProcessedEvents(deps.doc, config.TABLE_NAME, 'moderate', clock);
  const owners = new UploadOwners(deps.doc, config.TABLE_NAME, clock);
  const bans = new BanList(deps.doc, config.TABLE_NAME, clock);
  const metrics = moderationMetrics(service.metrics.registry, provider.name);
  const policy = moderationPolicy(config);

  const deleteObject = (bucket: string, key: string) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

  function rejectedReply(upload: Upload, reason: Reason, labels: ModerationLabel[] | undefined): OutgoingEvent {
    const data = rejectedSchema.parse({
      playerId: upload.playerId,
      uploadId: upload.uploadId,
      uploadedAt: upload.uploadedAt,
      reason,
      ...(labels && labels.length > 0 ? { labels } : {}),
    });
    return { id: `${upload.uploadId}.rejected`, source: SOURCE, type: EventType.rejected, subject: upload.key, time: clock().toISOString(), data };
  }

  /**
   * An upload that is over gets no new work. Whatever object its key holds now is deleted: the
   * original is not needed once an upload ends, and a later write to the key (a reused presigned
   * POST) was never moderated. A rejected upload's reply is rebuilt, the same id as the first.
   */
  async function settled(upload: Upload, record: UploadRecord | undefined, log: Logger): Promise<OutgoingEvent | undefined> {
    log.info({ status: record?.status }, 'upload already finished; no new work');
    await deleteObject(upload.bucket, upload.key);
    if (record?.status !== 'rejected') return undefined;
    return rejectedReply(upload, record.reason ?? { code: 'rejected', message: 'the upload was rejected' }, record.labels);
  }

  /** Other bytes were approved for this upload first: this write decides nothing (see the module comment). */
  function laterWrite(log: Logger): undefined {
    log.warn('a later write under an upload key whose first object was approved; not moderated');
    return undefined;
  }

  /** `finish` or `approve` refused: the upload ended meanwhile, or other bytes were approved first. */
  const notDecided = (upload: Upload, record: UploadRecord | undefined, log: Logger) =>
    record && !isTerminal(record.status) ? laterWrite(log) : settled(upload, record, log);

  async function reject(
    upload: Upload,
    outcome: Exclude<DecisionOutcome, 'approved'>,
    reason: Reason,
    labels: ModerationLabel[] | undefined,
    sha256: string | undefined,
    log: Logger,
  ) {
    // Record first, then delete: a retry after a crash in between finds the upload over and deletes again.
    const details = { reason, ...(labels ? { labels } : {}) };
    const { changed, record } = await uploads.finish(upload.playerId, upload.uploadId, 'rejected', details, { sha256 });
    if (!changed) return notDecided(upload, record, log);
    await deleteObject(upload.bucket, upload.key);
    metrics.decisions.inc({ outcome, provider: provider.name });
    log.info({ outcome, reason: reason.code }, 'upload rejected');
    return rejectedReply(upload, reason, labels);
  }

  function invalid(upload: Upload, problem: ImageProblem, sha256: string | undefined, log: Logger) {
    metrics.checkFailures.inc({ code: problem.code });
    return reject(upload, 'invalid', { code: problem.code, message: problem.message }, undefined, sha256, log);
  }

  async function moderate(
    target: Omit<Upload, 'uploadedAt'>,
    event: ReceivedEvent<S3Entity>,
    log: Logger,
    recordRead: Promise<UploadRecord | undefined>,
  ): Promise<OutgoingEvent | undefined> {
    const record = await recordRead;
    if (!record) {
      // Only presign creates upload records: an object without one was never handed out.
      await deleteObject(target.bucket, target.key);
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
      fetchUpload(s3, { bucket: upload.bucket, key: upload.key, eTag: event.data.object.eTag, maxBytes: limits.maxBytes }),
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

    const approval = await uploads.approve(upload.playerId, upload.uploadId, sha256);
    if (!approval.approved) return notDecided(upload, approval.record, log);
    await recordOwner(upload, print);
    metrics.decisions.inc({ outcome: 'approved', provider: provider.name });
    log.info({ labels: labels.length }, 'upload approved');
    return { id: `${upload.uploadId}.approved`, source: SOURCE, type: EventType.approved, subject: upload.key, time: clock().toISOString(), data };
  }

  /**
   * Whose picture this is, for moderators who may ban it (or the avatar it becomes) knowing only the
   * upload id. Written only once the upload record took the decision: an upload erased meanwhile
   * (its record gone) leaves no owner behind.
   */
  const recordOwner = (upload: Upload, print: string) => owners.put({ uploadId: upload.uploadId, playerId: upload.playerId, fingerprint: print });

  /**
   * In the policy's review band: the upload waits in `in_review` with what approving it would send
   * (`approved`), until a moderator decides (profile) or the review times out (the reconciler).
   * A redelivery that finds it already waiting answers the same `review_requested` again.
   */
  async function sendToReview(upload: Upload, approved: ApprovedData, print: string, log: Logger): Promise<OutgoingEvent | undefined> {
    const { changed, record } = await uploads.requestReview({
      playerId: upload.playerId,
      uploadId: upload.uploadId,
      review: { fingerprint: print, labels: approved.labels, uploadedAt: upload.uploadedAt, approved },
    });
    if (!changed && record?.status !== 'in_review') return notDecided(upload, record, log);
    await recordOwner(upload, print);
    if (changed) metrics.decisions.inc({ outcome: 'review', provider: provider.name });
    log.info({ labels: approved.labels.map((l) => l.name) }, 'upload sent to review');
    const data = reviewRequestedSchema.parse({ playerId: upload.playerId, uploadId: upload.uploadId, uploadedAt: upload.uploadedAt, labels: approved.labels });
    return { id: `${upload.uploadId}.review_requested`, source: SOURCE, type: EventType.reviewRequested, subject: upload.key, time: clock().toISOString(), data };
  }

  async function onObjectCreated(event: ReceivedEvent<S3Entity>, { log }: { log: Logger }): Promise<OutgoingEvent | undefined> {
    const bucket = event.data.bucket.name;
    // s3-source has already URL-decoded the key.
    const key = event.data.object.key;
    if (bucket !== config.BUCKET) {
      log.warn({ bucket }, 'event for another bucket; ignored');
      return undefined;
    }
    const ids = parseUploadKey(key);
    if (!ids) {
      // Nobody may park files in uploads/; anything elsewhere (derived avatars) is not ours to touch.
      if (key.startsWith(UPLOAD_PREFIX)) {
        await deleteObject(bucket, key);
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

  service.app.post('/events', eventEndpoint(service, [on(`${S3_OBJECT_CREATED_PREFIX}*`, s3EntitySchema, onObjectCreated)]));
  return service;
}
