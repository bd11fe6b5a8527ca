import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { hammingDistance } from '@avatar-pipeline/kit/bans';
import { decodeScaled, defaultLimits, fingerprint, inspectImage, STRICT_JPEG_MIN_SCALE, strictScale, type RawImage } from '@avatar-pipeline/imaging';

const photos = ['leaf.jpg', 'path.png', 'autumn.webp', 'cups-exif-rotated.jpg'] as const;
const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

/**
 * Measured (the fixtures and the 30 wallpaper photographs): copies resized and recompressed, or
 * decoded at another scale, are within 2 of the original; different photographs 20 or more apart.
 * The bounds below leave a margin on both sides: NEAR is the ban list's default distance.
 */
const NEAR = 4;
const FAR = 16;

/** The pixels moderate decodes an upload to (its embedded model's views are 224 px squares): strict, shrunk on load. */
async function decoded(input: Buffer, scale?: number): Promise<RawImage> {
  const inspected = await inspectImage(input);
  if (!inspected.ok) throw new Error(inspected.problem.message);
  const moderateScale = strictScale(inspected.format, 224 / Math.min(inspected.width, inspected.height));
  return decodeScaled(input, inspected, defaultLimits, scale ?? moderateScale);
}

const printOf = async (input: Buffer, scale?: number) => fingerprint(await decoded(input, scale));

/** The copies a player might upload of a banned picture. */
async function copies(input: Buffer): Promise<Record<string, Buffer>> {
  const upright = sharp(input).autoOrient();
  const { width } = await sharp(await upright.clone().toBuffer()).metadata();
  return {
    '90% JPEG q70': await upright.clone().resize(Math.round(width * 0.9)).jpeg({ quality: 70 }).toBuffer(),
    '50% JPEG q70': await upright.clone().resize(Math.round(width * 0.5)).jpeg({ quality: 70 }).toBuffer(),
    PNG: await upright.clone().png().toBuffer(),
  };
}

describe('fingerprint', () => {
  it('is 64 bits as 16 lowercase hex digits, the DC bit 0, and the same every time', async () => {
    const raw = await decoded(await photo('leaf.jpg'));
    const print = await fingerprint(raw);
    expect(print).toMatch(/^[0-7][0-9a-f]{15}$/);
    expect(await fingerprint(raw)).toBe(print);
    expect(await fingerprint({ ...raw, data: new Uint8Array(raw.data) })).toBe(print);
    // Balanced: 31 of the 63 AC bits are set (the median splits them).
    expect(hammingDistance(print, '0000000000000000')).toBe(31);
  });

  it.each(photos)('keeps %s near when resized, recompressed or converted', async (name) => {
    const input = await photo(name);
    const original = await printOf(input);
    for (const [copy, bytes] of Object.entries(await copies(input))) {
      expect(hammingDistance(original, await printOf(bytes)), copy).toBeLessThanOrEqual(NEAR);
    }
  });

  it.each(photos)('keeps %s near whatever scale moderate decodes it at', async (name) => {
    const input = await photo(name);
    const original = await printOf(input);
    for (const scale of [1, STRICT_JPEG_MIN_SCALE, 0.25, 0.1]) {
      expect(hammingDistance(original, await printOf(input, scale)), `scale ${scale}`).toBeLessThanOrEqual(NEAR);
    }
  });

  it('keeps different photographs far apart', async () => {
    const prints = await Promise.all(photos.map(async (name) => [name, await printOf(await photo(name))] as const));
    for (const [i, [a, pa]] of prints.entries()) {
      for (const [b, pb] of prints.slice(i + 1)) expect(hammingDistance(pa, pb), `${a} vs ${b}`).toBeGreaterThanOrEqual(FAR);
    }
  });

  it('hashes an opaque alpha channel as no alpha, and transparency on black', async () => {
    const raw = await decoded(await photo('leaf.jpg'));
    const withAlpha = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: 3 } }).ensureAlpha(1).raw().toBuffer();
    expect(await fingerprint({ ...raw, data: withAlpha, channels: 4 })).toBe(await fingerprint(raw));
    // The same picture, half of it transparent, is the picture with that half black.
    const half = Buffer.from(withAlpha);
    const blacked = Buffer.from(raw.data);
    for (let p = 0; p < raw.width * raw.height; p++) {
      if (p % raw.width < raw.width / 2) {
        half[p * 4 + 3] = 0;
        blacked.fill(0, p * 3, p * 3 + 3);
      }
    }
    expect(await fingerprint({ ...raw, data: half, channels: 4 })).toBe(await fingerprint({ ...raw, data: blacked }));
  });

  it('takes greyscale pixels too', async () => {
    const raw = await decoded(await photo('path.png'));
    const grey = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } }).greyscale().raw().toBuffer();
    expect(hammingDistance(await fingerprint({ width: raw.width, height: raw.height, channels: 1, data: grey }), await fingerprint(raw))).toBeLessThanOrEqual(NEAR);
  });
});
