/** Public avatar URLs from the object keys the thumbnail service wrote, and their removal. */
import { PermanentEventError } from '@avatar-pipeline/kit/cloudevents';
import { avatarPrefix, type Avatar, type ThumbnailedData } from '@avatar-pipeline/kit/events';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';

/** Sizes every avatar has; the API and Cognito (128) rely on them. */
export const REQUIRED_SIZES = ['64', '128', '256'] as const;

const safeName = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * `${mediaBaseUrl}/${objectKey}` per size. Keys must lie under this upload's
 * `avatars/<playerId>/<uploadId>/` prefix: an event can never point a profile at another object.
 */
export function avatarFromObjects(mediaBaseUrl: string, data: Pick<ThumbnailedData, 'playerId' | 'uploadId' | 'objects'>): Avatar {
  const prefix = avatarPrefix(data.playerId, data.uploadId);
  const url = (size: string) => {
    const key = data.objects[size];
    if (key === undefined) throw new PermanentEventError('incomplete_thumbnails', `no ${size} object in the event`);
    if (!key.startsWith(prefix) || !safeName.test(key.slice(prefix.length))) {
      throw new PermanentEventError('invalid_object_key', `object key for ${size} is not under ${prefix}`);
    }
    return `${mediaBaseUrl}/${key}`;
  };
  const sizes = new Set<string>([...REQUIRED_SIZES, ...Object.keys(data.objects).filter((size) => size !== 'full')]);
  return {
    thumbnails: Object.fromEntries([...sizes].sort((a, b) => Number(a) - Number(b)).map((size) => [size, url(size)])),
    full: url('full'),
  };
}

/**
 * Deletes every rendition of an upload that did not end ready: the CDN serves `avatars/` as is, so
 * whatever thumbnail wrote before the upload was rejected or failed would otherwise stay public.
 */
export function deleteRenditions(objects: ObjectStore, playerId: string, uploadId: string): Promise<number> {
  return objects.deletePrefix(avatarPrefix(playerId, uploadId));
}
