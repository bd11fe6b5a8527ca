/** Data schemas of every event on the broker, validated at each consumer's edge. */
import { z } from 'zod';
import { EventType, UPLOAD_PREFIX } from './topology.js';

/** Player ids end up in object keys and table keys: keep them to a safe alphabet. */
export const playerIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/, 'player id must be 1-128 characters of A-Z a-z 0-9 . _ -');
export const uploadIdSchema = z.uuid({ version: 'v7', message: 'upload id must be a UUIDv7' });

/** The `s3` element of an S3 event record: the data of `com.amazonaws.s3.ObjectCreated:*` events. */
export const s3EntitySchema = z.object({
  s3SchemaVersion: z.string().optional(),
  configurationId: z.string().optional(),
  bucket: z.object({ name: z.string().min(1), arn: z.string().optional() }).loose(),
  object: z
    .object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      eTag: z.string().optional(),
      versionId: z.string().optional(),
      sequencer: z.string().optional(),
    })
    .loose(),
}).loose();
export type S3Entity = z.infer<typeof s3EntitySchema>;

export const labelSchema = z.object({
  name: z.string(),
  parent: z.string().optional(),
  confidence: z.number().min(0).max(100),
});
export type ModerationLabel = z.infer<typeof labelSchema>;

export const reasonSchema = z.object({ code: z.string(), message: z.string() });
export type Reason = z.infer<typeof reasonSchema>;

/**
 * Why an upload ends when the bytes moderate approved are no longer under its key: a later write
 * (a reused or retried presigned POST) replaced them before thumbnail rendered them.
 */
export const objectReplaced: Reason = { code: 'object_replaced', message: 'the file was replaced after it was checked; upload it again' };

/** A SHA-256 digest as lowercase hex (`contentSha256`). */
export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 digest in lowercase hex');

const uploadRef = {
  playerId: playerIdSchema,
  uploadId: uploadIdSchema,
  /** When the object was uploaded (the S3 event time): the start of the pipeline clock. */
  uploadedAt: z.iso.datetime({ offset: true }),
};

export const approvedSchema = z.object({
  ...uploadRef,
  bucket: z.string(),
  key: z.string(),
  eTag: z.string(),
  /** Of the exact bytes moderate downloaded, checked and classified: the only bytes thumbnail may render. */
  sha256: sha256Schema,
  contentType: z.enum(['image/jpeg', 'image/png', 'image/webp']),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  /**
   * The avatar square moderate classified, in displayed coordinates: thumbnail renders exactly it.
   * Absent from events of earlier versions (in flight during an upgrade): thumbnail then applies
   * the rule those versions classified by (`squareRegion`).
   */
  square: z.object({ left: z.number().int().nonnegative(), top: z.number().int().nonnegative(), size: z.number().int().positive() }).optional(),
  provider: z.string(),
  labels: z.array(labelSchema),
});

export const rejectedSchema = z.object({
  ...uploadRef,
  reason: reasonSchema,
  labels: z.array(labelSchema).optional(),
});

export const thumbnailSizeSchema = z.string().regex(/^(\d+|full)$/);

export const thumbnailedSchema = z.object({
  ...uploadRef,
  bucket: z.string(),
  /** Object key per size ("64", "128", ..., "full"). */
  objects: z.record(thumbnailSizeSchema, z.string()),
});

export const avatarSchema = z.object({
  thumbnails: z.record(z.string().regex(/^\d+$/), z.url()),
  full: z.url(),
});
export type Avatar = z.infer<typeof avatarSchema>;

export const readySchema = z.object({ ...uploadRef, avatar: avatarSchema });

export const failedSchema = z.object({
  ...uploadRef,
  reason: reasonSchema,
  /** Type of the event that exhausted its retries; absent when the upload timed out (the reconciler: `processingTimedOut`). */
  failedEventType: z.string().optional(),
});

/** An upload whose ticket was never used in time: no object arrived, so no `uploadedAt`. */
export const expiredSchema = z.object({
  playerId: playerIdSchema,
  uploadId: uploadIdSchema,
  /** When the ticket was issued (the upload record's creation). */
  createdAt: z.iso.datetime({ offset: true }),
  reason: reasonSchema,
});

/** Why the reconciler ends an upload still `pending` long after its ticket expired. */
export const uploadExpired: Reason = { code: 'expired', message: 'the upload did not arrive before its ticket expired; ask for a new one' };

/** Why the reconciler fails an upload still `processing` after UPLOAD_PROCESSING_TIMEOUT_SECONDS. */
export const processingTimedOut: Reason = { code: 'timeout', message: 'processing did not finish in time; upload it again' };

/** Why moderate refuses a picture near a banned one's fingerprint (before the model runs). */
export const bannedPicture: Reason = { code: 'banned', message: 'this picture is not allowed' };

/** Why an upload a moderator rejected in review ends. */
export const moderatorRejected: Reason = { code: 'moderator', message: 'a moderator rejected this picture' };

/** Why the reconciler rejects an upload left in review past REVIEW_TIMEOUT_SECONDS (no one judged it: no ban). */
export const reviewTimedOut: Reason = { code: 'review_timeout', message: 'the picture was not reviewed in time; upload it again' };

/** An upload in moderation's review band: it waits `in_review` until a moderator decides (or the review times out). */
export const reviewRequestedSchema = z.object({
  ...uploadRef,
  /** The scores that put it in review (every label the model gave). */
  labels: z.array(labelSchema),
});

/**
 * Everything the system held about a player was erased. For consumers outside the pipeline (a game
 * backend's own Trigger): see `externalEvents`.
 */
export const playerErasedSchema = z.object({
  playerId: playerIdSchema,
  erasedAt: z.iso.datetime({ offset: true }),
});

export const eventDataSchemas = {
  [EventType.approved]: approvedSchema,
  [EventType.rejected]: rejectedSchema,
  [EventType.thumbnailed]: thumbnailedSchema,
  [EventType.ready]: readySchema,
  [EventType.failed]: failedSchema,
  [EventType.expired]: expiredSchema,
  [EventType.reviewRequested]: reviewRequestedSchema,
  [EventType.playerErased]: playerErasedSchema,
} as const;

export type ApprovedData = z.infer<typeof approvedSchema>;
export type RejectedData = z.infer<typeof rejectedSchema>;
export type ThumbnailedData = z.infer<typeof thumbnailedSchema>;
export type ReadyData = z.infer<typeof readySchema>;
export type FailedData = z.infer<typeof failedSchema>;
export type ExpiredData = z.infer<typeof expiredSchema>;
export type ReviewRequestedData = z.infer<typeof reviewRequestedSchema>;
export type PlayerErasedData = z.infer<typeof playerErasedSchema>;

/** `uploads/<playerId>/<uploadId>`: the only keys presign ever hands out. */
export function uploadKey(playerId: string, uploadId: string): string {
  return `${UPLOAD_PREFIX}${playerId}/${uploadId}`;
}

export function parseUploadKey(key: string): { playerId: string; uploadId: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 3 || `${parts[0]}/` !== UPLOAD_PREFIX) return undefined;
  const playerId = playerIdSchema.safeParse(parts[1]);
  const uploadId = uploadIdSchema.safeParse(parts[2]);
  return playerId.success && uploadId.success ? { playerId: playerId.data, uploadId: uploadId.data } : undefined;
}

/** Derived avatars: the only objects served publicly (the CDN's origin path). */
export const AVATAR_PREFIX = 'avatars/';

/** `avatars/<playerId>/<uploadId>/`: where one upload's renditions live, and nowhere else. */
export function avatarPrefix(playerId: string, uploadId: string): string {
  return `${AVATAR_PREFIX}${playerId}/${uploadId}/`;
}

/** `avatars/<playerId>/<uploadId>/<name>.webp`: one rendition (a size, or `full`). */
export function avatarKey(playerId: string, uploadId: string, name: string): string {
  return `${avatarPrefix(playerId, uploadId)}${name}.webp`;
}
