/**
 * `avatarpipeline.avatar.thumbnailed` -> `avatarpipeline.avatar.ready`: the upload ends ready,
 * nothing is left under its upload key, its avatar becomes the player's current one unless a
 * newer upload's already is, Cognito's `picture` follows (best effort), and the ready event goes
 * back to the broker as the reply.
 *
 * Order and convergence: the upload record decides first (one conditional write: exactly one
 * terminal state, and an upload that already failed or was rejected never becomes the avatar).
 * Every step after it is idempotent and repeated by any later attempt: a redelivery of the event
 * finds the upload ready and does the rest again, and if every delivery fails the dead-letter sink
 * does the same (`completeReady`) and announces ready itself. The ready event is the same whoever
 * sends it and however often: id `<uploadId>.ready`, time = when the upload became ready, the
 * avatar on the upload record, so push's per-notification claims take it once.
 */
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  EventType,
  on,
  thumbnailedSchema,
  uploadKey,
  type Avatar,
  type Clock,
  type Logger,
  type OutgoingEvent,
  type ProcessedEvents,
  type ReadyData,
  type UploadRecord,
  type UploadStore,
} from '@avatar-pipeline/kit';
import { avatarFromObjects, deleteRenditions } from './avatar.js';
import { defaultPictureRetry, syncPicture, type PictureRetryPolicy, type PictureSync } from './cognito.js';
import type { ProfileMetrics } from './metrics.js';
import type { AvatarOutcome, ProfileStore } from './profiles.js';

export const SOURCE = '/avatar-pipeline/profile';

/**
 * The ready event of an upload that is ready, identical on every path and attempt: its id is
 * per upload, its time the moment the upload became ready (the record's `updatedAt`, written once
 * by the transition), its avatar the one the upload record holds.
 */
export function readyEvent(record: Pick<UploadRecord, 'playerId' | 'uploadId' | 'updatedAt'>, avatar: Avatar, uploadedAt: string): OutgoingEvent {
  const { playerId, uploadId } = record;
  const data: ReadyData = { playerId, uploadId, uploadedAt, avatar };
  return { id: `${uploadId}.ready`, source: SOURCE, type: EventType.ready, subject: uploadKey(playerId, uploadId), time: record.updatedAt, data };
}

export interface CompletionDeps {
  bucket: string;
  s3: S3Client;
  profiles: ProfileStore;
  pictures: PictureSync | undefined;
  pictureRetry?: PictureRetryPolicy | undefined;
  metrics: ProfileMetrics;
}

/**
 * What follows an upload's `ready`, every step idempotent, so each attempt (a redelivery, the
 * dead-letter sink) runs them all again: deletes whatever is under the upload key (a later write
 * there was never moderated), makes the avatar current unless the same or a newer one is, and
 * mirrors it to Cognito. Rejects only when the S3 delete or the profile write fails; Cognito
 * never makes it reject (see `syncPicture`).
 */
export function readyCompletion(deps: CompletionDeps) {
  const { profiles, pictures, metrics } = deps;
  const pictureRetry = deps.pictureRetry ?? defaultPictureRetry;

  async function mirrorPicture(playerId: string, uploadId: string, avatar: Avatar, outcome: AvatarOutcome, log: Logger): Promise<void> {
    if (!pictures) return;
    const { outcome: synced, attempts, error } = await syncPicture(pictures, playerId, avatar.thumbnails['128'] ?? avatar.full, pictureRetry);
    metrics.cognitoSyncs.inc({ outcome: synced });
    try {
      if (synced === 'failed') {
        log.warn({ playerId, uploadId, attempts, err: error }, 'Cognito picture sync failed after its retries; ready not held back, marked pending on the profile');
        await profiles.markPictureSyncPending(playerId, uploadId);
        return;
      }
      if (synced === 'user_not_found') log.warn({ playerId, uploadId }, 'no Cognito user with this player id; picture not set');
      // A first attempt may have marked it pending (a new avatar's write cleared any older mark).
      if (outcome === 'unchanged') await profiles.clearPictureSyncPending(playerId, uploadId);
    } catch (err) {
      log.warn({ playerId, uploadId, err }, 'could not record the Cognito sync state on the profile');
    }
  }

  return async function completeReady(record: Pick<UploadRecord, 'playerId' | 'uploadId'>, avatar: Avatar, log: Logger): Promise<AvatarOutcome> {
    const { playerId, uploadId } = record;
    // Thumbnail deleted the original; a later write since (a reused presigned POST) was never moderated.
    await deps.s3.send(new DeleteObjectCommand({ Bucket: deps.bucket, Key: uploadKey(playerId, uploadId) }));

    // A stale upload stays ready (its thumbnails exist) but is not the avatar; its objects are
    // left to the bucket's lifecycle rule.
    const outcome = await profiles.setAvatar(playerId, uploadId, avatar);
    const current = outcome !== 'stale';
    if (outcome !== 'unchanged') metrics.profileUpdates.inc({ outcome: current ? 'current' : 'stale' });
    log.info({ playerId, uploadId, outcome }, 'profile avatar decided');

    // Repeated on a redelivery ('unchanged'): the attempt before may have stopped before it.
    if (current) await mirrorPicture(playerId, uploadId, avatar, outcome, log);
    return outcome;
  };
}

export type CompleteReady = ReturnType<typeof readyCompletion>;

export interface ReadyDeps {
  mediaBaseUrl: string;
  bucket: string;
  s3: S3Client;
  uploads: UploadStore;
  processed: ProcessedEvents;
  complete: CompleteReady;
  metrics: ProfileMetrics;
  clock: Clock;
}

export function thumbnailedRoute(deps: ReadyDeps) {
  const { uploads, processed, metrics, clock } = deps;
  return on(EventType.thumbnailed, thumbnailedSchema, async (event, { log }) => {
    const { reply } = await processed.once(event, async (): Promise<OutgoingEvent | undefined> => {
      const { playerId, uploadId, uploadedAt } = event.data;
      const avatar = avatarFromObjects(deps.mediaBaseUrl, event.data);

      // The upload record decides first: exactly one terminal state, and an upload that already
      // failed or was rejected (and told the player so) never becomes the avatar.
      const { changed, record } = await uploads.finish(playerId, uploadId, 'ready', { avatar });
      if (record?.status !== 'ready') {
        // Rendered by an attempt that outlived the upload's end (rejected or failed).
        if (record) await deleteRenditions(deps.s3, deps.bucket, playerId, uploadId);
        log.warn({ playerId, uploadId, status: record?.status ?? 'unknown' }, 'upload is not ready; thumbnails ignored');
        return undefined;
      }
      if (changed) metrics.endToEnd.observe(Math.max(0, (clock().getTime() - Date.parse(uploadedAt)) / 1000));

      // The avatar the upload became ready with (the same URLs for the same upload).
      const final = record.avatar ?? avatar;
      // A failure here answers 5xx: the redelivery (or, at the end, the dead-letter sink) finishes it.
      await deps.complete(record, final, log);
      return readyEvent(record, final, uploadedAt);
    });
    return reply;
  });
}
