/**
 * Moderate's one decode is also its integrity check: a decode at the model's reduced scale, where
 * JPEG and WebP shrink while decoding. It must refuse every damaged image a full-size decode
 * refuses: this runs both over a corpus of damaged files (truncated at many points, noise in place
 * of the image data, a premature end marker, bytes overwritten mid-stream) cut from real photos at
 * sizes where the reduced decode shrinks 2x, 4x and 8x, and requires the same verdict from each.
 */
import { defaultLimits, inspectImage } from '@avatar-pipeline/imaging';
import { garbageAfter, truncated } from '@avatar-pipeline/imaging/hostile';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeForModeration } from '../src/index.js';
import { photo } from './helpers.js';

const shape = { fit: 'fill', size: 224 } as const;

/** The same photo re-encoded with its short side `short` (JPEG shrink on load: 2x at 600, 8x at 2000). */
async function sized(name: string, short: number, format: 'jpeg' | 'png' | 'webp') {
  const image = sharp(await photo(name)).autoOrient();
  const meta = await image.metadata();
  const scale = short / Math.min(meta.autoOrient.width, meta.autoOrient.height);
  return image
    .resize(Math.round(meta.autoOrient.width * scale), Math.round(meta.autoOrient.height * scale))
    [format]()
    .toBuffer();
}

/** `file` with `bytes` overwritten at `at` (a fraction of its length). */
function overwritten(file: Buffer, at: number, bytes: Buffer): Buffer {
  const copy = Buffer.from(file);
  bytes.copy(copy, Math.floor(copy.length * at));
  return copy;
}

function damaged(file: Buffer): [string, Buffer][] {
  return [
    ...[0.2, 0.5, 0.8, 0.95, 0.99, 0.999].map((f): [string, Buffer] => [`truncated at ${f}`, truncated(file, f)]),
    ['the last 2 bytes cut', file.subarray(0, file.length - 2)],
    ['noise after the headers', garbageAfter(file, 800, Math.floor(file.length / 2))],
    ['an end marker mid-stream', overwritten(file, 0.6, Buffer.from([0xff, 0xd9]))],
    ['a restart marker mid-stream', overwritten(file, 0.4, Buffer.from([0xff, 0xd3]))],
    ['a block of 0xff bytes mid-stream', overwritten(file, 0.5, Buffer.alloc(64, 0xff))],
    ['a block of zeros mid-stream', overwritten(file, 0.7, Buffer.alloc(256, 0))],
  ];
}

/** The verdict of moderate's reduced decode: does it refuse the file? */
async function reducedRefuses(file: Buffer): Promise<boolean> {
  const header = await inspectImage(file, defaultLimits, { fullDecode: false });
  if (!header.ok) return true;
  return decodeForModeration(file, header, { crop: 'attention', shape, limits: defaultLimits }).then(
    () => false,
    () => true,
  );
}

/** The verdict of a full-size decode. */
async function fullRefuses(file: Buffer): Promise<boolean> {
  const header = await inspectImage(file, defaultLimits, { fullDecode: false });
  if (!header.ok) return true;
  return sharp(file, { failOn: 'warning', limitInputPixels: defaultLimits.maxPixels })
    .raw()
    .toBuffer()
    .then(
      () => false,
      () => true,
    );
}

describe("moderate's reduced decode refuses what a full-size decode refuses", () => {
  const sources = [
    ['leaf.jpg as JPEG, short side 600', 'leaf.jpg', 600, 'jpeg'],
    ['cups-exif-rotated.jpg as JPEG, short side 1000', 'cups-exif-rotated.jpg', 1000, 'jpeg'],
    ['leaf.jpg as JPEG, short side 2000', 'leaf.jpg', 2000, 'jpeg'],
    ['autumn.webp as WebP, short side 1200', 'autumn.webp', 1200, 'webp'],
    ['path.png as PNG, short side 900', 'path.png', 900, 'png'],
  ] as const;

  it.each(sources)('%s', async (_, name, short, format) => {
    const file = await sized(name, short, format);
    expect(await reducedRefuses(file)).toBe(false);
    const verdicts = [];
    for (const [what, bytes] of damaged(file)) verdicts.push({ what, full: await fullRefuses(bytes), reduced: await reducedRefuses(bytes) });
    expect(verdicts.filter((v) => v.full !== v.reduced)).toEqual([]);
    // Truncation is always caught, and most of the rest: the corpus is not vacuous.
    expect(verdicts.filter((v) => v.what.startsWith('truncated') && !v.reduced)).toEqual([]);
    expect(verdicts.filter((v) => v.reduced).length).toBeGreaterThanOrEqual(8);
  }, 60_000);

  it('while a JPEG decoded at a third of its size lets some through (why STRICT_JPEG_MIN_SCALE exists)', async () => {
    const file = await sized('cups-exif-rotated.jpg', 1000, 'jpeg');
    const { width, height } = await sharp(file).metadata();
    const third = (bytes: Buffer) =>
      sharp(bytes, { failOn: 'warning', sequentialRead: true })
        .resize(Math.round(width / 3), Math.round(height / 3), { fit: 'fill' })
        .raw()
        .toBuffer()
        .then(
          () => false,
          () => true,
        );
    const missed = [];
    for (const [what, bytes] of damaged(file)) if ((await fullRefuses(bytes)) && !(await third(bytes))) missed.push(what);
    expect(missed).not.toEqual([]);
  });
});
