/**
 * Validation of untrusted image bytes. Cheap checks come first (size, magic bytes, header
 * dimensions) so a decompression bomb is refused before a single pixel is decoded; only then is
 * the whole image decoded once, which catches truncation and corrupt data that headers hide.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { contentTypes, formatOfContentType, sniffFormat, type ImageFormat } from './formats.js';
import { strictScale } from './decode.js';
import { defaultLimits, type ImageLimits } from './limits.js';

export const imageProblemCodes = [
  'too_large',
  'empty',
  'unsupported_format',
  'too_many_pixels',
  'too_wide',
  'too_small',
  'aspect_ratio',
  'corrupt',
  'format_mismatch',
] as const;
export type ImageProblemCode = (typeof imageProblemCodes)[number];

export interface ImageProblem {
  code: ImageProblemCode;
  message: string;
}

export interface InspectedImage {
  ok: true;
  format: ImageFormat;
  contentType: (typeof contentTypes)[ImageFormat];
  /** Displayed dimensions: after EXIF orientation. */
  width: number;
  height: number;
  /** EXIF orientation (1-8) when the file carries one. */
  orientation?: number;
}

export type InspectResult = InspectedImage | { ok: false; problem: ImageProblem };

const problem = (code: ImageProblemCode, message: string): { ok: false; problem: ImageProblem } => ({ ok: false, problem: { code, message } });

/**
 * A sharp pipeline over untrusted input with the safe options: any decoder warning is an error,
 * the pixel count is capped (libvips refuses larger images before allocating), and rows are
 * read once in order so memory stays bounded.
 */
export function openImage(buf: Buffer, limits: ImageLimits = defaultLimits): Sharp {
  return sharp(buf, { failOn: 'warning', limitInputPixels: limits.maxPixels, sequentialRead: true });
}

/**
 * Full validation of an untrusted image: size, sniffed format, header dimensions, then one
 * complete decode. A sound image followed by other bytes (a ZIP or HTML payload: a polyglot)
 * passes, as decoders stop at the image's end: the original bytes are never served, and every
 * derived avatar is re-encoded, so the payload never reaches a browser.
 */
export interface InspectOptions {
  /**
   * Decode every pixel (default). A caller that decodes the whole image right after, with
   * `openImage` and the same limits, can skip it: its own decode fails the same way.
   */
  fullDecode?: boolean;
}

export async function inspectImage(buf: Buffer, limits: ImageLimits = defaultLimits, options: InspectOptions = {}): Promise<InspectResult> {
  if (buf.length === 0) return problem('empty', 'the file is empty');
  if (buf.length > limits.maxBytes) return problem('too_large', `the file is ${buf.length} bytes; the limit is ${limits.maxBytes}`);

  const sniffed = sniffFormat(buf.subarray(0, 1024));
  if (typeof sniffed !== 'string') {
    const what = sniffed.unsupported === 'unknown' ? 'the file is not a recognised image' : `${sniffed.unsupported.toUpperCase()} images are not accepted`;
    return problem('unsupported_format', `${what}; use JPEG, PNG or WebP`);
  }

  // Header only: no pixel data is decoded, so the pixel cap is lifted here to be able to say
  // how large the image claims to be (sharp would otherwise refuse with a generic error).
  let meta: Metadata;
  try {
    meta = await sharp(buf, { failOn: 'warning', limitInputPixels: false }).metadata();
  } catch (err) {
    return problem('corrupt', `the ${sniffed.toUpperCase()} header is unreadable (${firstLine(err)})`);
  }
  if (meta.format !== sniffed) {
    return problem('format_mismatch', `the file starts like ${sniffed.toUpperCase()} but decodes as ${String(meta.format).toUpperCase()}`);
  }
  const { width, height } = meta;
  if (!width || !height) return problem('corrupt', 'the image has no dimensions');
  if (width * height > limits.maxPixels) {
    return problem('too_many_pixels', `the image is ${width}x${height} (${width * height} pixels); the limit is ${limits.maxPixels}`);
  }
  if (Math.max(width, height) > limits.maxSide) {
    return problem('too_wide', `the image is ${width}x${height}; no side may exceed ${limits.maxSide} pixels`);
  }
  if (Math.min(width, height) < limits.minSide) {
    return problem('too_small', `the image is ${width}x${height}; each side must be at least ${limits.minSide} pixels`);
  }
  const aspect = Math.max(width, height) / Math.min(width, height);
  if (aspect > limits.maxAspect) {
    return problem(
      'aspect_ratio',
      `the image is ${width}x${height} (${aspect.toFixed(2)}:1); the longest side may be at most ${limits.maxAspect} times the shortest`,
    );
  }

  // A strict decode in one sequential pass (see STRICT_MIN_SCALE). Not stats(): its several
  // passes make libvips spill a large image to a temporary file.
  if (options.fullDecode ?? true) {
    try {
      // Small (a few rows held at a time) where the format allows: 64 px, or a JPEG's strict scale.
      const scale = strictScale(sniffed, 64 / Math.max(width, height));
      await openImage(buf, limits)
        .resize(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)), { fit: 'fill' })
        .raw()
        .toBuffer();
    } catch (err) {
      return { ok: false, problem: decodeProblem(err) };
    }
  }

  return {
    ok: true,
    format: sniffed,
    contentType: contentTypes[sniffed],
    width: meta.autoOrient.width,
    height: meta.autoOrient.height,
    ...(meta.orientation !== undefined ? { orientation: meta.orientation } : {}),
  };
}

/** A problem when the sniffed format is not the type the uploader declared (at presign time). */
export function declaredTypeProblem(format: ImageFormat, declaredContentType: string): ImageProblem | undefined {
  if (formatOfContentType(declaredContentType) === format) return undefined;
  return { code: 'format_mismatch', message: `the file is ${contentTypes[format]} but was declared as ${declaredContentType}` };
}

/** Why a full decode failed, for a caller that decodes the pixels itself (`fullDecode: false`). */
export function decodeProblem(err: unknown): ImageProblem {
  return { code: 'corrupt', message: `the image data is damaged (${firstLine(err)})` };
}

/** libvips errors are multi-line and name internal buffers: keep the first line. */
function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0] ?? message).trim().slice(0, 200);
}
