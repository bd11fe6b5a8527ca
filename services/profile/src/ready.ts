/**
 * `avatarpipeline.avatar.thumbnailed` -> `avatarpipeline.avatar.ready`: the upload ends ready,
 * nothing is left under its upload key, its avatar becomes the player's current one unless a
 * newer upload's already is, and the ready event goes back to the broker as the reply.
 */
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  EventType,
  on,
  thumbnailedSchema,
  uploadKey,
  type Clock,
  type OutgoingEvent,
  type ProcessedEvents,
  type ReadyData,
  type UploadStore,
} from '@avatar-pipeline/kit';
import { avatarFromObjects, deleteRenditions } from './avatar.js';
import type { PictureSync } from './cognito.js';
import type { ProfileMetrics } from './metrics.js';
import type { ProfileStore } from './profiles.js';

export const SOURCE = '/avatar-pipeline/profile';

export interface ReadyDeps {
  mediaBaseUrl: string;
  bucket: string;
  s3: S3Client;
  uploads: UploadStore;
  profiles: ProfileStore;
  processed: ProcessedEvents;
  pictures: PictureSync | undefined;
  metrics: ProfileMetrics;
  clock: Clock;
}

export function thumbnailedRoute(deps: ReadyDeps) {
  const { uploads, profiles, processed, pictures, metrics, clock } = deps;
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
      // Thumbnail deleted the original; a later write since (a reused presigned POST) was never moderated.
      await deps.s3.send(new DeleteObjectCommand({ Bucket: deps.bucket, Key: uploadKey(playerId, uploadId) }));

      // A stale upload stays ready (its thumbnails exist) but is not the avatar; its objects are
      // left to the bucket's lifecycle rule.
      const outcome = await profiles.setAvatar(playerId, uploadId, avatar);
      const current = outcome !== 'stale';
      if (outcome !== 'unchanged') metrics.profileUpdates.inc({ outcome: current ? 'current' : 'stale' });
      log.info({ playerId, uploadId, outcome }, 'profile avatar decided');

      // Repeated on a redelivery ('unchanged') in case the previous attempt failed right here.
      if (current && pictures) {
        const synced = await pictures.setPicture(playerId, avatar.thumbnails['128'] ?? avatar.full);
        metrics.pictureSyncs.inc({ outcome: synced });
        if (synced === 'user_not_found') log.warn({ playerId }, 'no Cognito user with this player id; picture not set');
      }

      const data: ReadyData = { playerId, uploadId, uploadedAt, avatar };
      return { id: `${uploadId}.ready`, source: SOURCE, type: EventType.ready, subject: uploadKey(playerId, uploadId), data };
    });
    return reply;
  });
}
