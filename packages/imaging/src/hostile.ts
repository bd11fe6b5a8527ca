/**
 * Hostile inputs for tests (exported as `@avatar-pipeline/imaging/hostile`, never from the main
 * entry): the files an attacker or a broken client would upload, and a pixel comparison.
 */
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A decompression bomb: a valid all-black 1-bit greyscale PNG of side x side pixels. The default
 * 20000x20000 is about 50 KB on disk and 400 megapixels (1.2 GB as RGB) decoded.
 */
export function pngBomb(side = 20_000): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, adaptive filtering, no interlace
  const row = 1 + Math.ceil(side / 8); // filter byte + packed pixels
  const pixels = deflateSync(Buffer.alloc(row * side), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', pixels),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The first `fraction` of a file: an interrupted upload. */
export function truncated(file: Buffer, fraction = 0.5): Buffer {
  return file.subarray(0, Math.floor(file.length * fraction));
}

/** A file that keeps its first `keep` bytes (magic and headers) followed by noise. */
export function garbageAfter(file: Buffer, keep = 600, noiseBytes = 60_000): Buffer {
  const noise = Buffer.alloc(noiseBytes);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) & 0xff;
  return Buffer.concat([file.subarray(0, keep), noise]);
}

/** A valid image followed by a ZIP and HTML payload (a polyglot). */
export function polyglot(image: Buffer): Buffer {
  return Buffer.concat([image, Buffer.from('PK\x03\x04\x14\x00\x00\x00payload.html<html><script>alert(document.cookie)</script></html>', 'latin1')]);
}

export const svgDocument = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><script>alert(1)</script><rect width="256" height="256" fill="red"/></svg>\n',
);

export const textFile = Buffer.from('This is not an image, whatever its name or declared type says.\n');

/** A plain image of the given size and format (e.g. a 16x16 PNG, a GIF). */
export function solidImage(width: number, height: number, format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff'): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 40, g: 120, b: 200 } } })
    .toFormat(format)
    .toBuffer();
}

/** Deterministic noise (a linear congruential generator): tests must not depend on luck. */
function noise(length: number, seed = 1): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

/**
 * A PNG whose colour channels are all white and whose alpha channel carries `photo` (as grey):
 * blank when flattened onto white, the photograph on any dark background.
 */
export async function hiddenInAlpha(photo: Buffer): Promise<Buffer> {
  const { data, info } = await sharp(photo).autoOrient().greyscale().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .joinChannel(data, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}

/** Where `tileInStrip` puts its tile. */
export const strip = { width: 1024, height: 256, tileLeft: 640, tileSide: 256 } as const;

/**
 * A 4:1 PNG strip, flat grey but for one square tile of bright detail (`strip.tileLeft`): squashed
 * whole into a model's square input the tile is a quarter of the picture, while an attention crop
 * of the strip (the avatar squares) is exactly the tile.
 */
export function tileInStrip(): Promise<Buffer> {
  const { width, height, tileLeft, tileSide } = strip;
  const pixels = Buffer.alloc(width * height * 3, 128);
  const tile = noise(tileSide * tileSide * 3);
  for (let y = 0; y < tileSide; y++) {
    for (let x = 0; x < tileSide; x++) {
      const from = (y * tileSide + x) * 3;
      const to = (y * width + tileLeft + x) * 3;
      // Red high (warmth draws attention), green and blue noise.
      pixels[to] = 160 + (tile[from]! >> 2);
      pixels[to + 1] = tile[from + 1]!;
      pixels[to + 2] = tile[from + 2]!;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/**
 * A heavy but valid upload: a 6000x6000 16-bit RGBA PNG with EXIF orientation 6, about 4.6 MiB
 * (under the 5 MiB upload limit) and 288 MB once decoded. Blocks of noise keep it compressible.
 */
export function heavyPng(): Promise<Buffer> {
  const side = 750;
  return sharp(noise(side * side * 4), { raw: { width: side, height: side, channels: 4 } })
    .resize(6000, 6000, { kernel: 'nearest' })
    .toColourspace('rgb16')
    .png({ compressionLevel: 6, adaptiveFiltering: true })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

/** Mean absolute difference per byte of two raw images of the same shape (0 = identical). */
export function meanDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`different sizes: ${a.length} and ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}
