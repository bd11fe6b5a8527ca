/**
 * Amazon Rekognition DetectModerationLabels. Rekognition reads JPEG and PNG objects straight from
 * S3 (up to 15 MB, 80 to 10,000 pixels a side); anything else it is sent as bytes (5 MB at most):
 * WebP, and images outside those sides, are re-encoded here as JPEG, scaled (and padded when the
 * aspect ratio leaves no other way) into the accepted range.
 */
import {
  DetectModerationLabelsCommand,
  type Image,
  type RekognitionClient,
} from '@aws-sdk/client-rekognition';
import { openImage, type ImageLimits } from '@avatar-pipeline/imaging';
import { PermanentEventError, type ModerationLabel } from '@avatar-pipeline/kit';
import type { ModerationInput, ModerationProvider } from './provider.js';

export const rekognitionLimits = {
  minSide: 80,
  maxSide: 10_000,
  s3MaxBytes: 15 * 1024 * 1024,
  bytesMaxBytes: 5 * 1024 * 1024,
  /** Longest side of a re-encoded image: ample for moderation, and keeps the JPEG well under 5 MB. */
  convertedMaxSide: 1920,
} as const;

export interface RekognitionOptions {
  client: RekognitionClient;
  /** MinConfidence (0-100): labels below it are not returned. */
  minConfidence: number;
  limits: ImageLimits;
}

/** Errors about the request itself: retrying the same image cannot help. */
const permanentErrors = new Set(['InvalidImageFormatException', 'ImageTooLargeException', 'InvalidParameterException', 'InvalidS3ObjectException']);

export function rekognitionProvider(options: RekognitionOptions): ModerationProvider {
  return {
    name: 'rekognition',
    async moderate(input: ModerationInput): Promise<ModerationLabel[]> {
      const image = await rekognitionImage(input, options.limits);
      let output;
      try {
        output = await options.client.send(new DetectModerationLabelsCommand({ Image: image, MinConfidence: options.minConfidence }));
      } catch (err) {
        const name = (err as { name?: string } | null)?.name ?? '';
        if (permanentErrors.has(name)) throw new PermanentEventError('moderation_refused', `Rekognition refused the image: ${name}`);
        throw err;
      }
      return (output.ModerationLabels ?? []).flatMap((label): ModerationLabel[] =>
        label.Name
          ? [{ name: label.Name, ...(label.ParentName ? { parent: label.ParentName } : {}), confidence: Math.min(100, Math.max(0, label.Confidence ?? 0)) }]
          : [],
      );
    },
  };
}

/** Where Rekognition gets the image: the S3 object when it can read it as is, otherwise JPEG bytes. */
export async function rekognitionImage(input: ModerationInput, limits: ImageLimits): Promise<Image> {
  const { format, width, height, image } = input;
  const readable =
    (format === 'jpeg' || format === 'png') &&
    Math.min(width, height) >= rekognitionLimits.minSide &&
    Math.max(width, height) <= rekognitionLimits.maxSide &&
    image.length <= rekognitionLimits.s3MaxBytes;
  if (readable) {
    return { S3Object: { Bucket: input.bucket, Name: input.key, ...(input.versionId ? { Version: input.versionId } : {}) } };
  }
  return { Bytes: await asJpeg(image, width, height, limits) };
}

async function asJpeg(image: Buffer, width: number, height: number, limits: ImageLimits): Promise<Uint8Array> {
  const { minSide, convertedMaxSide, bytesMaxBytes } = rekognitionLimits;
  // Enlarge small images to the minimum side, shrink large ones, never past the maximum side.
  const scale = Math.min(convertedMaxSide / Math.max(width, height), Math.max(1, minSide / Math.min(width, height)));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  for (const quality of [85, 60]) {
    const jpeg = await openImage(image, limits)
      .autoOrient()
      .resize(w, h, { fit: 'fill' })
      // A strip thinner than the minimum even after scaling is padded rather than refused.
      .extend({ right: Math.max(0, minSide - w), bottom: Math.max(0, minSide - h), background: '#ffffff' })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality })
      .toBuffer();
    if (jpeg.length <= bytesMaxBytes) return jpeg;
  }
  throw new PermanentEventError('moderation_refused', 'the image cannot be encoded small enough for Rekognition');
}
