/**
 * `avatarpipeline.avatar.approved` -> `avatarpipeline.avatar.thumbnailed`: the approved bytes are
 * downloaded, rendered (render.ts), the renditions written, then the original deleted.
 *
 * Only the bytes moderate approved are rendered. The event is no proof of approval (anything that
 * holds a delivery token, or can post to the broker, can send one), so the SHA-256 it carries must be
 * the one moderate's conditional approval recorded on the upload; an event for other bytes is
 * ignored (no reply, nothing dead-lettered that could fail a real upload). Whatever the
 * upload key holds is hashed after download (an ETag is an MD5, easy to collide, and local stand-ins
 * ignore If-Match). Other bytes there mean a later write (a reused or retried presigned POST)
 * replaced the original: never rendered, the event fails permanently (`object_replaced`) and the
 * dead-letter sink ends the upload failed.
 *
 * At-least-once delivery is safe: object keys are fixed by the upload id and renders are
 * deterministic, so a redelivery rewrites the same bytes; once the original is gone or replaced
 * after rendering, a redelivery answers the same reply if every rendition exists (deleting a later
 * write the key holds).
 */
import { imageLimits, inspectImage } from '@avatar-pipeline/imaging';
import { PermanentEventError, on, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { approvedSchema, avatarKey, objectReplaced, uploadKey, type ApprovedData, type ThumbnailedData } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import type { Clock, UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import type { LimitFunction } from 'p-limit';
import type { ThumbnailConfig } from './config.js';
import type { ThumbnailMetrics } from './metrics.js';
import { renderAvatar, SquareMismatchError, type RenderOptions, type Rendition } from './render.js';

export const SOURCE = '/avatar-pipeline/thumbnail';

/** Keys never change content (a new avatar is a new upload id), so caches may keep them forever. */
export const CACHE_CONTROL = 'public, max-age=31536000, immutable';

export interface ThumbnailingDeps {
  config: ThumbnailConfig;
  objects: Pick<ObjectStore, 'bucket' | 'getPinned' | 'put' | 'delete' | 'exists'>;
  /** What moderate approved: the upload record (an `UploadStore`). */
  approvals: Pick<UploadStore, 'approvedSha256'>;
  /** Where renders wait their turn. */
  renderQueue: LimitFunction;
  metrics: ThumbnailMetrics;
  clock: Clock;
}

export function approvedRoute(deps: ThumbnailingDeps) {
  const { config, objects, renderQueue, metrics, clock } = deps;
  const { bucket } = objects;
  const renderOptions: RenderOptions = {
    sizes: config.THUMBNAIL_SIZES,
    fullMax: config.THUMBNAIL_FULL_MAX,
    crop: config.THUMBNAIL_CROP,
    quality: config.THUMBNAIL_QUALITY,
    limits: imageLimits(config),
  };
  const names = [...config.THUMBNAIL_SIZES.map(String), 'full'];

  async function render(upload: Buffer, square: ApprovedData['square']): Promise<Rendition[]> {
    const end = metrics.duration.startTimer();
    try {
      // Header checks only: renderAvatar decodes every pixel with the same safe options, and a
      // damaged image fails there (moderate has already fully decoded these exact bytes).
      const image = await inspectImage(upload, renderOptions.limits, { fullDecode: false });
      if (!image.ok) throw new PermanentEventError(image.problem.code, image.problem.message);
      return await renderAvatar(upload, image, renderOptions, square).catch((err: Error) => {
        if (err instanceof SquareMismatchError) throw new PermanentEventError('square_mismatch', err.message);
        // The same bytes fail the same way every time: retrying cannot help.
        throw new PermanentEventError('undecodable', `the image could not be rendered: ${err.message.split('\n')[0]}`);
      });
    } finally {
      end();
    }
  }

  async function thumbnail(data: ApprovedData, log: Logger): Promise<OutgoingEvent | undefined> {
    if (data.bucket !== bucket || data.key !== uploadKey(data.playerId, data.uploadId)) {
      // Never read, let alone delete, an object the event names but the upload does not own.
      throw new PermanentEventError('foreign_object', `the event names ${data.bucket}/${data.key}, not this upload's object`);
    }
    // The approval check and the download overlap (one round trip instead of two). Nothing is
    // rendered, written or deleted before the approval is confirmed: for bytes moderate did not
    // approve, whatever the download brought (or however it failed) is dropped.
    const [approval, downloaded] = await Promise.allSettled([
      deps.approvals.approvedSha256(data.playerId, data.uploadId),
      // The ETag spares S3 sending a replaced object; the hash is what decides.
      objects.getPinned(data.key, { eTag: data.eTag, sha256: data.sha256 }, config.AVATAR_MAX_BYTES),
    ]);
    if (approval.status === 'rejected') throw approval.reason;
    if (approval.value !== data.sha256) {
      metrics.rendered.inc({ outcome: 'unapproved' });
      log.warn('approved event for bytes moderate did not approve; ignored');
      return undefined;
    }
    if (downloaded.status === 'rejected') throw downloaded.reason;
    const upload = downloaded.value;
    if (upload.kind === 'too_large') throw new PermanentEventError('too_large', `object ${data.key} is larger than ${config.AVATAR_MAX_BYTES} bytes`);
    const renditionKeys = Object.fromEntries(names.map((name) => [name, avatarKey(data.playerId, data.uploadId, name)]));
    const reply: OutgoingEvent = {
      id: `${data.uploadId}.thumbnailed`,
      source: SOURCE,
      type: EventType.thumbnailed,
      subject: data.key,
      time: clock().toISOString(),
      data: { playerId: data.playerId, uploadId: data.uploadId, uploadedAt: data.uploadedAt, bucket, objects: renditionKeys } satisfies ThumbnailedData,
    };

    const deleteOriginal = () => objects.delete(data.key);
    if (upload.kind !== 'ok') {
      const present = await Promise.all(Object.values(renditionKeys).map((key) => objects.exists(key)));
      if (!present.every(Boolean)) {
        if (upload.kind === 'missing') throw new PermanentEventError('upload_missing', 'the upload is gone and its avatars were never all written');
        log.warn('the upload key holds other bytes than the ones moderated; not rendered');
        throw new PermanentEventError(objectReplaced.code, 'the object under the upload key is not the one that was moderated (its SHA-256 differs)');
      }
      // Rendered before: a later write under the key is not needed, and never was moderated.
      if (upload.kind === 'replaced') await deleteOriginal();
      metrics.rendered.inc({ outcome: 'reused' });
      log.info('upload already thumbnailed; answering again');
      return reply;
    }

    const started = performance.now();
    const renditions = await renderQueue(() => render(upload.body, data.square));
    const rendered = performance.now();
    await Promise.all(
      renditions.map((r) => objects.put(avatarKey(data.playerId, data.uploadId, r.name), r.data, { contentType: 'image/webp', cacheControl: CACHE_CONTROL })),
    );
    const bytes = renditions.reduce((sum, r) => sum + r.data.length, 0);
    metrics.bytesWritten.inc(bytes);
    // Only now that every rendition is stored: a failure before this point leaves the original for the retry.
    await deleteOriginal();
    metrics.rendered.inc({ outcome: 'rendered' });
    log.info({ waitAndRenderMs: Math.round(rendered - started), bytes, renditions: names }, 'avatar rendered');
    return reply;
  }

  return on(EventType.approved, approvedSchema, async (event, { log }) => {
    try {
      return await thumbnail(event.data, log);
    } catch (err) {
      metrics.rendered.inc({ outcome: err instanceof PermanentEventError ? 'failed' : 'error' });
      throw err;
    }
  });
}
