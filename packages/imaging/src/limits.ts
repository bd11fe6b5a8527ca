/** Bounds on untrusted images: what an avatar may reasonably be, and what decoding may cost. */
import { DEFAULT_MAX_UPLOAD_BYTES, env, uploadLimitEnv } from '@avatar-pipeline/kit/config';

export interface ImageLimits {
  /** Largest encoded size in bytes. */
  maxBytes: number;
  /** Largest width x height: bounds the memory a decode can claim (decompression bombs). */
  maxPixels: number;
  /** Longest side in pixels. */
  maxSide: number;
  /** Shortest side in pixels: smaller images make useless avatars and weak moderation input. */
  minSide: number;
  /**
   * Longest side over shortest side. The avatar squares show a crop of at least 1/maxAspect of the
   * image; a longer strip would hide a small tile the model sees as a sliver.
   */
  maxAspect: number;
}

export const defaultLimits: ImageLimits = {
  maxBytes: DEFAULT_MAX_UPLOAD_BYTES,
  maxPixels: 40_000_000,
  maxSide: 10_000,
  minSide: 32,
  maxAspect: 4,
};

/**
 * The limits as environment variables. Every service that reads uploads takes the same ones, so an
 * image moderate accepts is never refused later by thumbnail.
 */
export const imageEnv = {
  ...uploadLimitEnv,
  IMAGE_MAX_PIXELS: env.int(defaultLimits.maxPixels, 1).describe('Largest width × height: refused before decoding (decompression bombs).'),
  IMAGE_MAX_SIDE: env.int(defaultLimits.maxSide, 1).describe('Longest side in pixels.'),
  IMAGE_MIN_SIDE: env.int(defaultLimits.minSide, 1).describe('Shortest side in pixels.'),
  IMAGE_MAX_ASPECT: env.number(defaultLimits.maxAspect, 1).describe('Longest side over shortest side: longer strips are refused (`aspect_ratio`).'),
  /** moderate reads it too: it classifies the very square thumbnail renders. */
  THUMBNAIL_CROP: env
    .oneOf(['attention', 'centre'], 'attention')
    .describe('How the avatar squares are cut: `attention` follows the most salient region, `centre` the middle. moderate classifies that square.'),
};

export function imageLimits(config: {
  AVATAR_MAX_BYTES: number;
  IMAGE_MAX_PIXELS: number;
  IMAGE_MAX_SIDE: number;
  IMAGE_MIN_SIDE: number;
  IMAGE_MAX_ASPECT: number;
}): ImageLimits {
  return {
    maxBytes: config.AVATAR_MAX_BYTES,
    maxPixels: config.IMAGE_MAX_PIXELS,
    maxSide: config.IMAGE_MAX_SIDE,
    minSide: config.IMAGE_MIN_SIDE,
    maxAspect: config.IMAGE_MAX_ASPECT,
  };
}
