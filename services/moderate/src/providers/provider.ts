/** The model behind moderation: something that labels an image with the Rekognition v7 taxonomy. */
import type { ModerationLabel } from '@avatar-pipeline/kit/events';
import type { ImageFormat } from '@avatar-pipeline/imaging';
import type { ModerationView, ViewShape } from '../views.js';

export interface ModerationInput {
  bucket: string;
  key: string;
  /** The bytes downloaded and checked; the views are decoded from them. */
  image: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
  /** What the provider judges, in its `viewShape`: never anything read again from the bucket. */
  views: readonly ModerationView[];
}

export interface ModerationProvider {
  /** Bounded metric label and `provider` field of approved events. */
  readonly name: 'nsfwjs' | 'rekognition';
  /** How it takes its views. */
  readonly viewShape: ViewShape;
  /**
   * Labels found in any view at or above the provider's minimum confidence, each at its highest
   * (`worstLabels`); throws on transient failures.
   */
  moderate(input: ModerationInput): Promise<ModerationLabel[]>;
  /** Frees model memory (tests, shutdown). */
  close?(): Promise<void> | void;
}

/** The labels of several views as one answer: every label any view has, at its highest confidence. */
export function worstLabels(perView: readonly (readonly ModerationLabel[])[]): ModerationLabel[] {
  const worst = new Map<string, ModerationLabel>();
  for (const label of perView.flat()) {
    const key = `${label.parent ?? ''}/${label.name}`;
    const seen = worst.get(key);
    if (!seen || label.confidence > seen.confidence) worst.set(key, label);
  }
  return [...worst.values()];
}
