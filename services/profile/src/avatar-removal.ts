/**
 * Removing a player's current avatar: the player's own `DELETE /v1/players/{id}/avatar`, a
 * moderator's, or a moderator's ban of the upload it came from (bans-api.ts). The profile stops
 * serving it first (a conditional write on its upload id), then its objects
 * (`avatars/<playerId>/<uploadId>/`), the Cognito `picture` (when a pool is configured) and the
 * upload's OWNER item go, and its upload record expires again like any finished one.
 *
 * Idempotent: the profile keeps the removed upload's id (see `ProfileItem`), so a repeat finds the
 * same upload and does every step again; a step that failed is finished that way. Safe against a
 * ready write racing it: that upload, and any older one finishing late, can never become the
 * avatar again (the profile write only moves to newer upload ids), and a newer one that became
 * current meanwhile stays (the removal's write is conditional on the upload it read), its Cognito
 * picture mirrored again if the removal's clear came after its own.
 */
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { deleteRenditions } from './avatar.js';
import { defaultPictureRetry, syncPicture, type PictureRetryPolicy, type PictureSync } from './cognito.js';
import type { AvatarRecords, ProfileStore } from './profiles.js';

export interface AvatarRemovalDeps {
  profiles: Pick<ProfileStore, 'item' | 'get' | 'removeAvatar'>;
  records: Pick<AvatarRecords, 'release'>;
  owners: Pick<UploadOwners, 'delete'>;
  objects: ObjectStore;
  /** Cognito's `picture`, when a user pool is configured. */
  pictures?: PictureSync | undefined;
  /** For mirroring a newer avatar again (default `defaultPictureRetry`). */
  pictureRetry?: PictureRetryPolicy | undefined;
}

export interface AvatarRemoval {
  /** The upload whose avatar was removed now or by an earlier call (undefined: nothing to remove). */
  uploadId: string | undefined;
  /** This call stopped the profile serving it (false for a repeat, or when a newer one became current meanwhile). */
  removed: boolean;
}

/**
 * Removes the player's current avatar, or, with `opts.uploadId`, only if it is (or was, before an
 * earlier removal) that upload's: a moderator banning an upload never removes a newer avatar.
 * Rejects when a step fails (a repeat finishes it).
 */
export async function removeAvatar(deps: AvatarRemovalDeps, playerId: string, opts: { uploadId?: string } = {}): Promise<AvatarRemoval> {
  const item = await deps.profiles.item(playerId);
  const uploadId = item?.avatarUploadId;
  if (uploadId === undefined || (opts.uploadId !== undefined && opts.uploadId !== uploadId)) return { uploadId: undefined, removed: false };

  // Not served any more before anything is deleted, so no client is sent to a missing object.
  const removed = item?.avatar ? await deps.profiles.removeAvatar(playerId, uploadId) : false;
  await deleteRenditions(deps.objects, playerId, uploadId);
  if (deps.pictures) {
    await deps.pictures.clearPicture(playerId, AbortSignal.timeout(10_000));
    // A newer avatar that became current meanwhile may have been mirrored before the clear.
    const current = await deps.profiles.get(playerId);
    if (current) await syncPicture(deps.pictures, playerId, current.avatar.thumbnails['128'] ?? current.avatar.full, deps.pictureRetry ?? defaultPictureRetry);
  }
  await deps.records.release(playerId, uploadId);
  // Last: a moderator's repeated ban finds the upload through it.
  await deps.owners.delete(uploadId);
  return { uploadId, removed };
}
