/** The image formats the pipeline accepts, and how their bytes are recognised. */

export type ImageFormat = 'jpeg' | 'png' | 'webp';

export const contentTypes: Record<ImageFormat, 'image/jpeg' | 'image/png' | 'image/webp'> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** The accepted format a declared MIME type names, if any (parameters and case ignored). */
export function formatOfContentType(contentType: string): ImageFormat | undefined {
  const essence = contentType.split(';')[0]?.trim().toLowerCase();
  return (Object.keys(contentTypes) as ImageFormat[]).find((f) => contentTypes[f] === essence);
}

const ascii = (head: Uint8Array, offset: number, length: number) =>
  String.fromCharCode(...head.subarray(offset, offset + length));

const startsWith = (head: Uint8Array, bytes: readonly number[], offset = 0) =>
  head.length >= offset + bytes.length && bytes.every((b, i) => head[offset + i] === b);

/** ISO-BMFF brands (the `ftyp` box) of HEIF-family still images. */
const heifBrands = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1', 'avif', 'avis']);

/**
 * Magic-byte sniffing of the first bytes (16 are enough for the binary formats; give 256 or more
 * so text formats such as SVG can be named). Only the bytes decide: names and declared types lie.
 */
export function sniffFormat(head: Uint8Array): ImageFormat | { unsupported: string } {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 4) === 'WEBP') return 'webp';
  if (ascii(head, 0, 6) === 'GIF87a' || ascii(head, 0, 6) === 'GIF89a') return { unsupported: 'gif' };
  if (ascii(head, 4, 4) === 'ftyp') {
    const brand = ascii(head, 8, 4);
    if (heifBrands.has(brand)) return { unsupported: brand.startsWith('avi') ? 'avif' : 'heic' };
  }
  if (ascii(head, 0, 2) === 'BM' && head.length >= 14) return { unsupported: 'bmp' };
  if (startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a])) return { unsupported: 'tiff' };
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, 1024)).replace(/^\uFEFF/, '').trimStart();
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!DOCTYPE\s+svg|<svg[\s>])/i.test(text)) return { unsupported: 'svg' };
  return { unsupported: 'unknown' };
}
