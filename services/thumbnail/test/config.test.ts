import { imageLimits } from '@avatar-pipeline/imaging';
import { ConfigError } from '@avatar-pipeline/kit/config';
import { describe, expect, it } from 'vitest';
import { testConfig } from './helpers.js';

describe('thumbnail configuration', () => {
  it('has safe defaults', () => {
    expect(testConfig()).toMatchObject({
      BUCKET: 'avatars',
      AVATAR_MAX_BYTES: 5_242_880,
      THUMBNAIL_SIZES: [64, 128, 256],
      THUMBNAIL_FULL_MAX: 1024,
      THUMBNAIL_CROP: 'attention',
      THUMBNAIL_QUALITY: 80,
    });
  });

  it('takes the same image limits as moderate, so what moderate accepts renders', () => {
    const config = testConfig({ AVATAR_MAX_BYTES: '1000000', IMAGE_MAX_PIXELS: '50000000', IMAGE_MAX_SIDE: '12000', IMAGE_MIN_SIDE: '16', IMAGE_MAX_ASPECT: '2.5' });
    expect(imageLimits(config)).toEqual({ maxBytes: 1_000_000, maxPixels: 50_000_000, maxSide: 12_000, minSide: 16, maxAspect: 2.5 });
    expect(imageLimits(testConfig()).maxAspect).toBe(4);
  });

  it('reads sizes as a sorted set', () => {
    expect(testConfig({ THUMBNAIL_SIZES: '256, 48,256,96' }).THUMBNAIL_SIZES).toEqual([48, 96, 256]);
  });

  it.each([
    ['THUMBNAIL_SIZES', '64,big'],
    ['THUMBNAIL_SIZES', '8'],
    ['THUMBNAIL_SIZES', ' , '],
    ['THUMBNAIL_CROP', 'entropy'],
    ['IMAGE_MAX_ASPECT', '0.5'],
    ['THUMBNAIL_QUALITY', '101'],
    ['THUMBNAIL_FULL_MAX', '10'],
  ])('refuses %s=%s', (name, value) => {
    expect(() => testConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => testConfig({ [name]: value })).toThrow(name);
  });
});
