/**
 * How a moderation ends, each recorded on the upload before it is announced: rejected (the object
 * deleted), sent to review (`in_review`, for a moderator), approved; and the paths that decide
 * nothing: an upload already over (`settled`) and a later write under a key whose first bytes were
 * approved (`laterWrite`). The replies' ids are fixed per upload (`<uploadId>.rejected`,
 * `.review_requested`, `.approved`), so a redelivery's reply is the same event and consumers
 * dedupe it by id.
 */
import type { OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { rejectedSchema, reviewRequestedSchema, type ApprovedData, type ModerationLabel, type Reason } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { isTerminal, type Clock, type UploadRecord, type UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import type { ImageProblem } from '@avatar-pipeline/imaging';
import type { DecisionOutcome, ModerationMetrics } from './metrics.js';

export const SOURCE = '/avatar-pipeline/moderate';

export interface Upload {
  playerId: string;
  uploadId: string;
  bucket: string;
  key: string;
  /** The S3 event time: when the pipeline clock started. */
  uploadedAt: string;
}

export interface OutcomeDeps {
  uploads: Pick<UploadStore, 'finish' | 'approve' | 'requestReview'>;
  owners: Pick<UploadOwners, 'put'>;
  metrics: ModerationMetrics;
  /** The provider's name, a label of the decision metrics. */
  provider: string;
  objects: Pick<ObjectStore, 'delete'>;
  clock: Clock;
}

export function moderationOutcomes(deps: OutcomeDeps) {
  const { uploads, owners, metrics, provider, objects, clock } = deps;

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
    await objects.delete(upload.key);
    if (record?.status !== 'rejected') return undefined;
    return rejectedReply(upload, record.reason ?? { code: 'rejected', message: 'the upload was rejected' }, record.labels);
  }

  /** Other bytes were approved for this upload first: this write decides nothing (see moderation.ts's module comment). */
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
    await objects.delete(upload.key);
    metrics.decisions.inc({ outcome, provider });
    log.info({ outcome, reason: reason.code }, 'upload rejected');
    return rejectedReply(upload, reason, labels);
  }

  function invalid(upload: Upload, problem: ImageProblem, sha256: string | undefined, log: Logger) {
    metrics.checkFailures.inc({ code: problem.code });
    return reject(upload, 'invalid', { code: problem.code, message: problem.message }, undefined, sha256, log);
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
    if (changed) metrics.decisions.inc({ outcome: 'review', provider });
    log.info({ labels: approved.labels.map((l) => l.name) }, 'upload sent to review');
    const data = reviewRequestedSchema.parse({ playerId: upload.playerId, uploadId: upload.uploadId, uploadedAt: upload.uploadedAt, labels: approved.labels });
    return { id: `${upload.uploadId}.review_requested`, source: SOURCE, type: EventType.reviewRequested, subject: upload.key, time: clock().toISOString(), data };
  }

  /** The policy let the upload through: `approved` carries the bytes' SHA-256, the only bytes thumbnail may render. */
  async function approve(upload: Upload, data: ApprovedData, print: string, log: Logger): Promise<OutgoingEvent | undefined> {
    const approval = await uploads.approve(upload.playerId, upload.uploadId, data.sha256);
    if (!approval.approved) return notDecided(upload, approval.record, log);
    await recordOwner(upload, print);
    metrics.decisions.inc({ outcome: 'approved', provider });
    log.info({ labels: data.labels.length }, 'upload approved');
    return { id: `${upload.uploadId}.approved`, source: SOURCE, type: EventType.approved, subject: upload.key, time: clock().toISOString(), data };
  }

  return { settled, laterWrite, reject, invalid, sendToReview, approve };
}

export type ModerationOutcomes = ReturnType<typeof moderationOutcomes>;
