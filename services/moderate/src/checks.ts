/**
 * Everything checked before a model sees the upload: the object is still the one the event
 * announced, its size is within bounds (from its declared length, before reading it, then during
 * the capped read), and the bytes are a JPEG, PNG or WebP of acceptable dimensions and aspect
 * (from the headers) whose format is the content type declared when the upload was presigned. The
 * pixels are decoded once, after this, into the views a provider judges (`decodeForModeration`).
 */
import { declaredTypeProblem, inspectImage, type ImageLimits, type ImageProblem, type InspectedImage } from '@avatar-pipeline/imaging';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';

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

/** Reads the upload named by an event, pinned to the event's ETag when it has one. */
export async function fetchUpload(objects: Pick<ObjectStore, 'getPinned'>, target: { key: string; eTag: string | undefined; maxBytes: number }): Promise<Fetched> {
  const read = await objects.getPinned(target.key, { eTag: target.eTag }, target.maxBytes);
  switch (read.kind) {
    case 'ok':
      return { kind: 'ok', body: read.body, eTag: read.eTag };
    case 'replaced':
      return { kind: 'stale' };
    case 'too_large':
      return tooLarge(read.size, target.maxBytes);
    case 'missing':
      return read;
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
