import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeScaled, defaultLimits, regionIn, squareRegion } from '@avatar-pipeline/imaging';
import { strip, tileInStrip } from '@avatar-pipeline/imaging/hostile';

const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

async function displayed(input: Buffer) {
  const meta = await sharp(input).metadata();
  return { width: meta.autoOrient.width, height: meta.autoOrient.height };
}

describe('squareRegion', () => {
  it('is the whole of a square image', async () => {
    const square = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#3a7' } }).png().toBuffer();
    expect(await squareRegion(square, { width: 300, height: 300 }, 'attention', defaultLimits)).toEqual({ left: 0, top: 0, size: 300 });
  });

  it('takes the middle on request, across the long side', async () => {
    const wide = await sharp({ create: { width: 1000, height: 400, channels: 3, background: '#3a7' } }).png().toBuffer();
    const tall = await sharp(wide).rotate(90).png().toBuffer();
    expect(await squareRegion(wide, { width: 1000, height: 400 }, 'centre', defaultLimits)).toEqual({ left: 300, top: 0, size: 400 });
    expect(await squareRegion(tall, { width: 400, height: 1000 }, 'centre', defaultLimits)).toEqual({ left: 0, top: 300, size: 400 });
  });

  it('follows attention to the one detailed tile of a strip', async () => {
    const input = await tileInStrip();
    expect(await squareRegion(input, { width: strip.width, height: strip.height }, 'attention', defaultLimits)).toEqual({
      left: strip.tileLeft,
      top: 0,
      size: strip.height,
    });
  });

  it('answers in displayed coordinates: the strip stored sideways with EXIF orientation 6 gives the same square', async () => {
    const upright = await tileInStrip();
    const sideways = await sharp(upright).rotate(270).withMetadata({ orientation: 6 }).png().toBuffer();
    const dims = await displayed(sideways);
    expect(dims).toEqual({ width: strip.width, height: strip.height });
    expect(await squareRegion(sideways, dims, 'attention', defaultLimits)).toEqual(await squareRegion(upright, dims, 'attention', defaultLimits));
  });

  it('stays inside the image for a real photo and is the same on every call', async () => {
    const input = await photo('cups-exif-rotated.jpg');
    const dims = await displayed(input);
    const region = await squareRegion(input, dims, 'attention', defaultLimits);
    expect(region.size).toBe(Math.min(dims.width, dims.height));
    expect(region.left + region.size).toBeLessThanOrEqual(dims.width);
    expect(region.top + region.size).toBeLessThanOrEqual(dims.height);
    expect(await squareRegion(input, dims, 'attention', defaultLimits)).toEqual(region);
  });
});

describe('decodeScaled and regionIn', () => {
  it('decodes oriented sRGB pixels at the asked scale, keeping alpha, and maps a region onto them', async () => {
    const input = await sharp({ create: { width: 900, height: 300, channels: 4, background: { r: 200, g: 30, b: 30, alpha: 0.5 } } })
      .rotate(270)
      .withMetadata({ orientation: 6 })
      .png()
      .toBuffer();
    const image = await displayed(input);
    const raw = await decodeScaled(input, image, defaultLimits, 0.5);
    expect([raw.width, raw.height, raw.channels]).toEqual([450, 150, 4]);
    expect(raw.data.length).toBe(450 * 150 * 4);
    expect(regionIn({ left: 600, top: 0, size: 300 }, image, raw)).toEqual({ left: 300, top: 0, size: 150 });
    // Rounding never carries a region past the decoded edge.
    expect(regionIn({ left: 599, top: 0, size: 300 }, image, { width: 449, height: 149 })).toEqual({ left: 299, top: 0, size: 149 });
  });
});
