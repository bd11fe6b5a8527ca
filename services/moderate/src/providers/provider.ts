/** The model behind moderation: something that labels an image with the Rekognition v7 taxonomy. */
import type { ModerationLabel } from '@avatar-pipeline/kit';
import type { ImageFormat } from '@avatar-pipeline/imaging';

export interface ModerationInput {
  bucket: string;
  key: string;
  /** The object version, when the bucket is versioned: pins what a remote service reads. */
  versionId?: string;
  /** The bytes already downloaded and validated (complete decode, limits). */
  image: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
}

export interface ModerationProvider {
  /** Bounded metric label and `provider` field of approved events. */
  readonly name: 'nsfwjs' | 'rekognition';
  /** Labels found at or above the provider's minimum confidence; throws on transient failures. */
  moderate(input: ModerationInput): Promise<ModerationLabel[]>;
  /** Frees model memory (tests, shutdown). */
  close?(): Promise<void> | void;
}
