/**
 * Amazon Rekognition DetectModerationLabels, one call per view moderate decoded (the whole image
 * and the avatar square, each on black and on white when transparent), the worst deciding. Each
 * view is sent as JPEG bytes (5 MB at most), scaled (and padded when the aspect ratio leaves no
 * other way) into the sides Rekognition accepts. Rekognition never reads the object from S3: the
 * object could be replaced between moderate's download and that read, and what is judged must be
 * exactly the bytes moderate checked and approves.
 */
import { DetectModerationLabelsCommand, type RekognitionClient } from '@aws-sdk/client-rekognition';
import { fromRaw, type RawImage } from '@avatar-pipeline/imaging';
import { PermanentEventError } from '@avatar-pipeline/kit/cloudevents';
import type { ModerationLabel } from '@avatar-pipeline/kit/events';
import { worstLabels, type ModerationInput, type ModerationProvider } from './provider.js';

export const rekognitionLimits = {
  minSide: 80,
  bytesMaxBytes: 5 * 1024 * 1024,
  /** Longest side of a view: ample for moderation, and keeps the JPEG well under 5 MB. */
  viewMaxSide: 1920,
} as const;

export interface RekognitionOptions {
  client: RekognitionClient;
  /** MinConfidence (0-100): labels below it are not returned. */
  minConfidence: number;
}

/** Errors about the request itself: retrying the same image cannot help. */
const permanentErrors = new Set(['InvalidImageFormatException', 'ImageTooLargeException', 'InvalidParameterException']);

export function rekognitionProvider(options: RekognitionOptions): ModerationProvider {
  async function detect(view: RawImage): Promise<ModerationLabel[]> {
    let output;
    try {
      output = await options.client.send(new DetectModerationLabelsCommand({ Image: { Bytes: await asJpeg(view) }, MinConfidence: options.minConfidence }));
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
  }

  return {
    name: 'rekognition',
    viewShape: { fit: 'inside', maxSide: rekognitionLimits.viewMaxSide },
    async moderate(input: ModerationInput): Promise<ModerationLabel[]> {
      const perView: ModerationLabel[][] = [];
      // One call at a time: a refused image stops at the first, and the account's rate is spared.
      for (const view of input.views) perView.push(await detect(view.pixels));
      return worstLabels(perView);
    },
  };
}

async function asJpeg(view: RawImage): Promise<Uint8Array> {
  const { minSide, viewMaxSide, bytesMaxBytes } = rekognitionLimits;
  const { width, height } = view;
  // Enlarge small views to the minimum side, never past the maximum side.
  const scale = Math.min(viewMaxSide / Math.max(width, height), Math.max(1, minSide / Math.min(width, height)));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  for (const quality of [85, 60]) {
    const jpeg = await fromRaw(view)
      .resize(w, h, { fit: 'fill' })
      // A strip thinner than the minimum even after scaling is padded rather than refused.
      .extend({ right: Math.max(0, minSide - w), bottom: Math.max(0, minSide - h), background: '#ffffff' })
      .jpeg({ quality })
      .toBuffer();
    if (jpeg.length <= bytesMaxBytes) return jpeg;
  }
  throw new PermanentEventError('moderation_refused', 'the image cannot be encoded small enough for Rekognition');
}
