/** Bounds on untrusted images: what an avatar may reasonably be, and what decoding may cost. */

export interface ImageLimits {
  /** Largest encoded size in bytes. */
  maxBytes: number;
  /** Largest width x height: bounds the memory a decode can claim (decompression bombs). */
  maxPixels: number;
  /** Longest side in pixels. */
  maxSide: number;
  /** Shortest side in pixels: smaller images make useless avatars and weak moderation input. */
  minSide: number;
}

export const defaultLimits: ImageLimits = {
  maxBytes: 5 * 1024 * 1024,
  maxPixels: 40_000_000,
  maxSide: 10_000,
  minSide: 32,
};
