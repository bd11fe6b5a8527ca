/**
 * Decoding untrusted images to raw pixels no larger than the caller needs. Memory follows the
 * output, not the upload: rows stream from the decoder through the shrink (sequential read; JPEG
 * and WebP shrink while decoding), and the EXIF rotation is applied after the shrink, to the small
 * image. A 6000x6000 16-bit RGBA PNG (288 MB decoded) never exists whole in memory.
 */
import sharp, { type Sharp } from 'sharp';
import type { ImageFormat } from './formats.js';
import { openImage } from './inspect.js';
import type { ImageLimits } from './limits.js';

export interface Dimensions {
  width: number;
  height: number;
}

/** 8-bit sRGB pixels in displayed orientation: 3 channels, or 4 when the image has alpha. */
export interface RawImage extends Dimensions {
  data: Buffer;
  channels: 3 | 4;
}

/**
 * The scale of a strict decode: one that refuses every damaged image a full-size decode refuses.
 * Measured on 432 JPEGs with bytes overwritten mid-stream: decoded through libvips at a third of
 * their size or less, three in four of the 246 a full decode refuses as corrupt ("premature end of
 * data segment") decode without a warning; above a third, none does (services/moderate/test/
 * hostile.test.ts keeps both facts checked). So a strict JPEG decode stays at STRICT_JPEG_MIN_SCALE or
 * more (JPEG shrink on load of 2; the entropy decoding, most of the cost, is the same at any
 * scale). PNG and WebP decode every row whatever the output scale.
 */
export const STRICT_JPEG_MIN_SCALE = 0.4;

export function strictScale(format: ImageFormat, scale: number): number {
  return Math.min(1, format === 'jpeg' ? Math.max(scale, STRICT_JPEG_MIN_SCALE) : scale);
}

/**
 * The image (`image` is its displayed size, as `inspectImage` reports it) decoded at `scale`
 * (1 or less). A damaged image throws here when the scale is a `strictScale`.
 */
export async function decodeScaled(input: Buffer, image: Dimensions, limits: ImageLimits, scale: number): Promise<RawImage> {
  let decoder = openImage(input, limits).autoOrient();
  if (scale < 1) {
    decoder = decoder.resize(Math.max(1, Math.round(image.width * scale)), Math.max(1, Math.round(image.height * scale)), { fit: 'fill' });
  }
  const { data, info } = await decoder.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 && info.channels !== 4) throw new Error(`expected 3 or 4 channels, got ${info.channels}`);
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** A sharp pipeline over decoded pixels. */
export function fromRaw(raw: RawImage): Sharp {
  return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } });
}

/**
 * Process-wide libvips settings for a small pod (moderate and thumbnail): one thread per operation
 * (parallelism comes from requests side by side, bounded by containerConcurrency, so threads follow
 * the pod's CPU limit rather than the node's core count; 2 threads per operation measured no faster
 * for thumbnails) and no operation cache (every input is a one-off buffer, so caching only holds
 * memory).
 */
export function tuneLibvips(): void {
  sharp.concurrency(1);
  sharp.cache(false);
}
