import { defaultLimits, squareRegion } from '@avatar-pipeline/imaging';
import { meanDifference, strip, tileInStrip } from '@avatar-pipeline/imaging/hostile';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { renderAvatar, WEBP_EFFORT, type RenderOptions } from '../src/render.js';
import { photo } from './helpers.js';

const options: RenderOptions = { sizes: [64, 128, 256], fullMax: 1024, crop: 'attention', quality: 80, limits: defaultLimits };

async function render(input: Buffer, opts: Partial<RenderOptions> = {}) {
  const meta = await sharp(input).metadata();
  const out = await renderAvatar(input, { width: meta.autoOrient.width, height: meta.autoOrient.height }, { ...options, ...opts });
  return Promise.all(out.map(async (r) => ({ name: r.name, bytes: r.data, meta: await sharp(r.data).metadata() })));
}

const sizesOf = (out: Awaited<ReturnType<typeof render>>) => Object.fromEntries(out.map((r) => [r.name, [r.meta.width, r.meta.height]]));

describe('renderAvatar', () => {
  it('is deterministic: the same upload gives the same bytes', async () => {
    const input = await photo('cups-exif-rotated.jpg');
    const [a, b] = [await render(input), await render(input)];
    a.forEach((r, i) => expect(r.bytes.equals(b[i]!.bytes)).toBe(true));
  });

  it('keeps squares exact for panoramas and tiny images, and never enlarges the full rendition', async () => {
    const panorama = await sharp({ create: { width: 3000, height: 60, channels: 3, background: '#3a7' } }).png().toBuffer();
    expect(sizesOf(await render(panorama))).toEqual({ '64': [64, 64], '128': [128, 128], '256': [256, 256], full: [1024, 20] });
    const tiny = await sharp({ create: { width: 40, height: 48, channels: 3, background: '#a37' } }).jpeg().toBuffer();
    expect(sizesOf(await render(tiny))).toEqual({ '64': [64, 64], '128': [128, 128], '256': [256, 256], full: [40, 48] });
  });

  it('honours configured sizes and full size', async () => {
    const out = await render(await photo('leaf.jpg'), { sizes: [32, 512], fullMax: 300 });
    expect(sizesOf(out)).toEqual({ '32': [32, 32], '512': [512, 512], full: [300, 188] });
  });

  it('converts CMYK and profiled images to untagged sRGB', async () => {
    const leaf = await photo('leaf.jpg');
    const cmyk = await sharp(leaf).toColourspace('cmyk').jpeg().toBuffer();
    const p3 = await sharp(leaf).withIccProfile('p3').jpeg().toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    expect((await sharp(p3).metadata()).icc).toBeDefined();
    for (const input of [cmyk, p3]) {
      for (const r of await render(input)) {
        expect(r.meta).toMatchObject({ format: 'webp', space: 'srgb', channels: 3 });
        expect(r.meta.icc).toBeUndefined();
      }
    }
  });

  it('without a square from the approved event, cuts every square from the region squareRegion gives', async () => {
    const cases = [
      ['tileInStrip', await tileInStrip(), 'attention'],
      ['cups-exif-rotated.jpg', await photo('cups-exif-rotated.jpg'), 'attention'],
      ['cups-exif-rotated.jpg', await photo('cups-exif-rotated.jpg'), 'centre'],
    ] as const;
    for (const [name, input, crop] of cases) {
      const meta = await sharp(input).metadata();
      const region = await squareRegion(input, meta.autoOrient, crop, defaultLimits);
      const out = await render(input, { crop });
      for (const size of options.sizes) {
        const rendered = await sharp(out.find((r) => r.name === String(size))!.bytes).raw().toBuffer();
        // Through the same WebP encode, whose loss on the strip's noise dwarfs any cropping error.
        const cut = async (left: number, top: number) => {
          const square = sharp(input).autoOrient().extract({ left, top, width: region.size, height: region.size }).resize(size, size);
          return sharp(await square.webp({ quality: options.quality, effort: WEBP_EFFORT }).toBuffer()).raw().toBuffer();
        };
        expect(meanDifference(rendered, await cut(region.left, region.top)), `${name} ${crop} ${size}`).toBeLessThan(4);
        // A square a tenth of its side away is told apart: the comparison is not lenient.
        const shift = Math.round(region.size / 10);
        const [left, top] = meta.autoOrient.width > meta.autoOrient.height ? [Math.max(0, region.left - shift), 0] : [0, Math.max(0, region.top - shift)];
        if (left !== region.left || top !== region.top) expect(meanDifference(rendered, await cut(left, top)), `${name} ${crop} ${size}`).toBeGreaterThan(6);
      }
    }
    // The strip's avatar is its one detailed tile, which moderate classifies on its own.
    expect(await squareRegion(await tileInStrip(), { width: strip.width, height: strip.height }, 'attention', defaultLimits)).toMatchObject({ left: strip.tileLeft });
  });

  it('keeps transparency', async () => {
    const logo = await sharp({ create: { width: 300, height: 200, channels: 4, background: { r: 200, g: 30, b: 30, alpha: 0.5 } } }).png().toBuffer();
    for (const r of await render(logo)) expect(r.meta.hasAlpha).toBe(true);
  });
});
