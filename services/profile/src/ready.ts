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
 *
 * Avatars' lives: the upload that becomes current keeps its record and OWNER item (no TTL) while it
 * is; the one it replaces is superseded, its objects deleted by the reconciler
 * AVATAR_RETAIN_SECONDS later (CDN caches expire first); an upload that ends ready but never
 * becomes current (a newer one already is) is superseded at once.
 *
 * Erasure (erasure.ts): an upload whose record is gone (erased) leaves nothing (its renditions and
 * original are deleted, unless it is somehow the current avatar), and one that ended ready just
 * before the erasure deleted its record never brings the profile back: the tombstone is read after
 * the profile and Cognito writes (the erasure writes it before deleting anything), and what they
 * wrote is undone when the upload was issued before the erasure.
 */
import { on, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { thumbnailedSchema, uploadKey, type Avatar, type ReadyData } from '@avatar-pipeline/kit/events';
import type { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import type { Clock, UploadRecord, UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { avatarFromObjects, deleteRenditions } from './avatar.js';
import { defaultPictureRetry, syncPicture, type PictureRetryPolicy, type PictureSync } from './cognito.js';
import type { ProfileMetrics } from './metrics.js';
import type { AvatarOutcome, AvatarRecords, ProfileStore } from './profiles.js';
import type { Tombstones } from './tombstones.js';

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
  objects: ObjectStore;
  profiles: ProfileStore;
  records: Pick<AvatarRecords, 'keep' | 'supersede'>;
  owners: Pick<UploadOwners, 'keep'>;
  tombstones: Pick<Tombstones, 'get'>;
  pictures: PictureSync | undefined;
  pictureRetry?: PictureRetryPolicy | undefined;
  metrics: ProfileMetrics;
}

/** What a ready upload came to: `erased` when its player was erased meanwhile (nothing of it is left). */
export type CompletionOutcome = AvatarOutcome | 'erased';

/**
 * An upload without a record (erased, or never issued) whose objects were written anyway (a step
 * that began before the erasure): its original and renditions are deleted, the renditions unless
 * they are the player's current avatar (a record past its TTL).
 */
export async function discardUnrecorded(deps: { objects: ObjectStore; profiles: Pick<ProfileStore, 'get'> }, playerId: string, uploadId: string): Promise<void> {
  await deps.objects.delete(uploadKey(playerId, uploadId));
  if ((await deps.profiles.get(playerId))?.avatarUploadId !== uploadId) await deleteRenditions(deps.objects, playerId, uploadId);
}

/**
 * What follows an upload's `ready`, every step idempotent, so each attempt (a redelivery, the
 * dead-letter sink) runs them all again: deletes whatever is under the upload key (a later write
 * there was never moderated), makes the avatar current unless the same or a newer one is, keeps
 * or supersedes the records (see the module comment), mirrors it to Cognito, and checks for an
 * erasure. Rejects when a table or S3 call fails; the Cognito mirror never makes it reject (see
 * `syncPicture`), its undo after an erasure does (a retry must finish it).
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

  /** The player was erased after this upload's record ended ready: what this attempt wrote goes too. */
  async function undo(playerId: string, uploadId: string, mirrored: boolean, log: Logger): Promise<void> {
    await profiles.deleteIfCurrent(playerId, uploadId);
    await deleteRenditions(deps.objects, playerId, uploadId);
    if (mirrored && pictures) await pictures.clearPicture(playerId, AbortSignal.timeout(10_000));
    log.warn({ playerId, uploadId }, 'the player was erased while the upload finished; its avatar was removed again');
  }

  return async function completeReady(record: Pick<UploadRecord, 'playerId' | 'uploadId' | 'createdAt'>, avatar: Avatar, log: Logger): Promise<CompletionOutcome> {
    const { playerId, uploadId } = record;
    // Thumbnail deleted the original; a later write since (a reused presigned POST) was never moderated.
    await deps.objects.delete(uploadKey(playerId, uploadId));

    const { outcome, previous } = await profiles.setAvatar(playerId, uploadId, avatar);
    const current = outcome !== 'stale';
    if (outcome !== 'unchanged') metrics.profileUpdates.inc({ outcome: current ? 'current' : 'stale' });
    log.info({ playerId, uploadId, outcome, previous }, 'profile avatar decided');

    if (current) {
      // Kept while current; the avatar it replaced goes after the retention. Repeated on a
      // redelivery ('unchanged'): the attempt before may have stopped before them.
      await Promise.all([deps.records.keep(playerId, uploadId), deps.owners.keep(uploadId), previous ? deps.records.supersede(playerId, previous) : undefined]);
      await mirrorPicture(playerId, uploadId, avatar, outcome, log);
    } else {
      // Not the avatar (a newer one is, or this one was removed): its objects go after the retention too.
      await deps.records.supersede(playerId, uploadId);
    }

    // Read after the writes above: an erasure that began before them is seen here (it writes the
    // tombstone first), and one that began after deletes what they wrote itself.
    const tombstone = await deps.tombstones.get(playerId);
    if (tombstone && record.createdAt <= tombstone.requestedAt) {
      await undo(playerId, uploadId, current && pictures !== undefined, log);
      return 'erased';
    }
    return outcome;
  };
}

export type CompleteReady = ReturnType<typeof readyCompletion>;

export interface ReadyDeps {
  mediaBaseUrl: string;
  objects: ObjectStore;
  uploads: UploadStore;
  profiles: Pick<ProfileStore, 'get'>;
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
        // Rendered by an attempt that outlived the upload's end (rejected or failed), or its player's erasure.
        if (record) await deleteRenditions(deps.objects, playerId, uploadId);
        else await discardUnrecorded(deps, playerId, uploadId);
        log.warn({ playerId, uploadId, status: record?.status ?? 'unknown' }, 'upload is not ready; thumbnails ignored');
        return undefined;
      }
      if (changed) metrics.endToEnd.observe(Math.max(0, (clock().getTime() - Date.parse(uploadedAt)) / 1000));

      // The avatar the upload became ready with (the same URLs for the same upload).
      const final = record.avatar ?? avatar;
      // A failure here answers 5xx: the redelivery (or, at the end, the dead-letter sink) finishes it.
      if ((await deps.complete(record, final, log)) === 'erased') return undefined;
      return readyEvent(record, final, uploadedAt);
    });
    return reply;
  });
}
