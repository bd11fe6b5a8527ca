import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  contentTypes,
  declaredTypeProblem,
  defaultLimits,
  formatOfContentType,
  inspectImage,
  openImage,
  sniffFormat,
  type ImageFormat,
} from '@avatar-pipeline/imaging';
import { garbageAfter, pngBomb, polyglot, solidImage, svgDocument, textFile, truncated } from '@avatar-pipeline/imaging/hostile';

const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

describe('sniffFormat', () => {
  it('names accepted formats by their magic bytes', async () => {
    expect(sniffFormat(await photo('leaf.jpg'))).toBe('jpeg');
    expect(sniffFormat(await photo('path.png'))).toBe('png');
    expect(sniffFormat(await photo('autumn.webp'))).toBe('webp');
  });

  it('names the unsupported kinds', async () => {
    expect(sniffFormat(await solidImage(40, 40, 'gif'))).toEqual({ unsupported: 'gif' });
    expect(sniffFormat(await solidImage(40, 40, 'tiff'))).toEqual({ unsupported: 'tiff' });
    expect(sniffFormat(svgDocument)).toEqual({ unsupported: 'svg' });
    expect(sniffFormat(Buffer.from('  <svg xmlns="http://www.w3.org/2000/svg"></svg>'))).toEqual({ unsupported: 'svg' });
    expect(sniffFormat(Buffer.from('BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00', 'latin1'))).toEqual({ unsupported: 'bmp' });
    const ftyp = (brand: string) => Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from(`ftyp${brand}\0\0\0\0mif1`, 'latin1')]);
    expect(sniffFormat(ftyp('heic'))).toEqual({ unsupported: 'heic' });
    expect(sniffFormat(ftyp('avif'))).toEqual({ unsupported: 'avif' });
    expect(sniffFormat(textFile)).toEqual({ unsupported: 'unknown' });
    expect(sniffFormat(new Uint8Array())).toEqual({ unsupported: 'unknown' });
    // A RIFF container that is not WebP (a WAV file) is not mistaken for one.
    expect(sniffFormat(Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt ', 'latin1'))).toEqual({ unsupported: 'unknown' });
  });
});

describe('inspectImage on real photos', () => {
  it.each([
    ['leaf.jpg', 'jpeg', 960, 600, undefined],
    ['path.png', 'png', 800, 500, undefined],
    ['autumn.webp', 'webp', 900, 563, undefined],
    // Stored sideways (750x1200) with EXIF orientation 6: the displayed size is reported.
    ['cups-exif-rotated.jpg', 'jpeg', 1200, 750, 6],
  ] as const)('accepts %s', async (name, format, width, height, orientation) => {
    const result = await inspectImage(await photo(name));
    expect(result).toEqual({
      ok: true,
      format,
      contentType: contentTypes[format as ImageFormat],
      width,
      height,
      ...(orientation ? { orientation } : {}),
    });
  });
});

describe('inspectImage on hostile input', () => {
  const codeOf = async (buf: Buffer, limits = defaultLimits) => {
    const result = await inspectImage(buf, limits);
    return result.ok ? 'ok' : result.problem.code;
  };

  it('refuses empty and oversized files before looking inside', async () => {
    expect(await codeOf(Buffer.alloc(0))).toBe('empty');
    const leaf = await photo('leaf.jpg');
    expect(await codeOf(leaf, { ...defaultLimits, maxBytes: leaf.length - 1 })).toBe('too_large');
    expect(await codeOf(leaf, { ...defaultLimits, maxBytes: leaf.length })).toBe('ok');
  });

  it('refuses formats other than JPEG, PNG and WebP', async () => {
    expect(await codeOf(textFile)).toBe('unsupported_format');
    expect(await codeOf(svgDocument)).toBe('unsupported_format');
    expect(await codeOf(await solidImage(64, 64, 'gif'))).toBe('unsupported_format');
    const result = await inspectImage(svgDocument);
    expect(result.ok ? '' : result.problem.message).toMatch(/SVG/);
  });

  it('refuses a PNG decompression bomb from its header, without decoding it', async () => {
    const bomb = pngBomb(20_000);
    expect(bomb.length).toBeLessThan(100_000);
    const started = performance.now();
    const result = await inspectImage(bomb);
    expect(result).toMatchObject({ ok: false, problem: { code: 'too_many_pixels' } });
    // Decoding 400 megapixels would take seconds and over a gigabyte; the header check takes milliseconds.
    expect(performance.now() - started).toBeLessThan(500);
    // The safe pipeline refuses it too, should a caller skip inspection.
    await expect(openImage(bomb).stats()).rejects.toThrow(/pixel limit/);
  });

  it('enforces the side limits', async () => {
    expect(await codeOf(await solidImage(16, 16, 'png'))).toBe('too_small');
    expect(await codeOf(await solidImage(32, 32, 'png'))).toBe('ok');
    expect(await codeOf(await solidImage(10_001, 40, 'png'))).toBe('too_wide');
    expect(await codeOf(await solidImage(40, 10_000, 'png'), { ...defaultLimits, maxAspect: 250 })).toBe('ok');
    expect(await codeOf(await solidImage(400, 400, 'png'), { ...defaultLimits, maxPixels: 400 * 400 - 1 })).toBe('too_many_pixels');
  });

  it('refuses an aspect ratio beyond the limit (4:1 by default) from the header', async () => {
    expect(await codeOf(await solidImage(400, 100, 'png'))).toBe('ok');
    expect(await codeOf(await solidImage(100, 400, 'jpeg'))).toBe('ok');
    expect(await codeOf(await solidImage(500, 100, 'png'))).toBe('aspect_ratio');
    expect(await codeOf(await solidImage(100, 500, 'webp'))).toBe('aspect_ratio');
    expect(await codeOf(await solidImage(500, 100, 'png'), { ...defaultLimits, maxAspect: 5 })).toBe('ok');
    // Checked before any pixel is decoded: the damaged strip is refused for its shape.
    const result = await inspectImage(garbageAfter(await solidImage(2000, 400, 'jpeg'), 300, 2000));
    expect(result).toMatchObject({ ok: false, problem: { code: 'aspect_ratio', message: 'the image is 2000x400 (5.00:1); the longest side may be at most 4 times the shortest' } });
  });

  it('finds damage only a full decode reveals', async () => {
    const leaf = await photo('leaf.jpg');
    expect(await codeOf(truncated(leaf, 0.5))).toBe('corrupt');
    expect(await codeOf(truncated(leaf, 0.99))).toBe('corrupt');
    expect(await codeOf(garbageAfter(leaf))).toBe('corrupt');
    expect(await codeOf(truncated(await photo('path.png'), 0.7))).toBe('corrupt');
    expect(await codeOf(truncated(await photo('autumn.webp'), 0.7))).toBe('corrupt');
    // JPEG magic and nothing usable after it.
    expect(await codeOf(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 1, 2, 3]))).toBe('corrupt');
  });

  it('skips the pixel decode only when asked, keeping every header check', async () => {
    const leaf = await photo('leaf.jpg');
    const damaged = garbageAfter(leaf);
    expect(await inspectImage(damaged, defaultLimits, { fullDecode: false })).toMatchObject({ ok: true, format: 'jpeg' });
    expect((await inspectImage(damaged, defaultLimits, { fullDecode: true })).ok).toBe(false);
    const bomb = await inspectImage(await pngBomb(), defaultLimits, { fullDecode: false });
    expect(bomb.ok ? 'ok' : bomb.problem.code).toBe('too_many_pixels');
  });

  it('accepts a polyglot whose image part decodes cleanly (the payload never reaches a viewer)', async () => {
    const result = await inspectImage(polyglot(await photo('leaf.jpg')));
    expect(result).toMatchObject({ ok: true, format: 'jpeg', width: 960, height: 600 });
  });
});

describe('declared content type', () => {
  it('maps MIME types to formats', () => {
    expect(formatOfContentType('image/jpeg')).toBe('jpeg');
    expect(formatOfContentType('IMAGE/PNG; charset=binary')).toBe('png');
    expect(formatOfContentType('image/gif')).toBeUndefined();
  });

  it('flags a JPEG declared (or named) as PNG', async () => {
    const result = await inspectImage(await photo('leaf.jpg'));
    if (!result.ok) throw new Error('expected the photo to pass');
    expect(declaredTypeProblem(result.format, 'image/png')).toMatchObject({ code: 'format_mismatch' });
    expect(declaredTypeProblem(result.format, 'image/jpeg')).toBeUndefined();
  });
});
