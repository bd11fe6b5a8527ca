/**
 * Everything checked before a model sees the upload: the object is still the one the event
 * announced, its size is within bounds (from HeadObject, before downloading, then during the
 * capped download), and the bytes are a JPEG, PNG or WebP of acceptable dimensions and aspect
 * (from the headers) whose format is the content type declared when the upload was presigned. The
 * pixels are decoded once, after this, into the views a provider judges (`decodeForModeration`).
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { declaredTypeProblem, inspectImage, type ImageLimits, type ImageProblem, type InspectedImage } from '@avatar-pipeline/imaging';
import { awsStatus, getObjectBytes, ObjectTooLargeError, quotedETag } from '@avatar-pipeline/kit/objects';

export type Fetched =
  | { kind: 'ok'; body: Buffer; eTag: string }
  /** The object was replaced after the event: the newer write has an event of its own. */
  | { kind: 'stale' }
  | { kind: 'missing' }
  | { kind: 'invalid'; problem: ImageProblem };

const tooLarge = (size: number | undefined, maxBytes: number): Fetched => ({
  kind: 'invalid',
  problem: {
    code: 'too_large',
    message: size === undefined ? `the file is larger than ${maxBytes} bytes` : `the file is ${size} bytes; the limit is ${maxBytes}`,
  },
});

/** Downloads the upload named by an event, pinned to the event's ETag when it has one. */
export async function fetchUpload(
  s3: S3Client,
  target: { bucket: string; key: string; eTag: string | undefined; maxBytes: number },
): Promise<Fetched> {
  const { bucket, key, maxBytes } = target;
  try {
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: bucket, Key: key, ...(target.eTag ? { IfMatch: quotedETag(target.eTag) } : {}) }),
    );
    if (head.ContentLength !== undefined && head.ContentLength > maxBytes) return tooLarge(head.ContentLength, maxBytes);
    const eTag = head.ETag ?? target.eTag;
    if (!eTag) throw new Error(`HeadObject gave no ETag for ${key}`);
    // Pinned to what HeadObject saw, so the size check and the bytes concern the same object.
    const object = await getObjectBytes(s3, { Bucket: bucket, Key: key, IfMatch: quotedETag(eTag) }, maxBytes);
    return { kind: 'ok', body: object.body, eTag: eTag.replace(/"/g, '') };
  } catch (err) {
    if (err instanceof ObjectTooLargeError) return tooLarge(undefined, maxBytes);
    const status = awsStatus(err);
    if (status === 412) return { kind: 'stale' };
    if (status === 404) return { kind: 'missing' };
    throw err;
  }
}

/** The downloaded bytes' headers against the limits and the declared content type. */
export async function checkImage(body: Buffer, declaredContentType: string, limits: ImageLimits): Promise<{ ok: true; image: InspectedImage } | { ok: false; problem: ImageProblem }> {
  // decodeForModeration decodes every pixel right after, with the same limits: a damaged image fails there.
  const inspected = await inspectImage(body, limits, { fullDecode: false });
  if (!inspected.ok) return inspected;
  const mismatch = declaredTypeProblem(inspected.format, declaredContentType);
  return mismatch ? { ok: false, problem: mismatch } : { ok: true, image: inspected };
}
