import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLimits } from '@avatar-pipeline/imaging';
import { decide, defaultPolicy } from '../src/policy.js';
import { labelsFromScores, loadNsfwjsProvider, nsfwClasses, type ClassScores, type NsfwjsProvider } from '../src/providers/nsfwjs.js';

const photos = ['leaf.jpg', 'cups-exif-rotated.jpg', 'path.png', 'autumn.webp'] as const;
const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));
const top = (scores: ClassScores) => nsfwClasses.reduce((best, c) => (scores[c] > scores[best] ? c : best));

describe('nsfwjs provider (the real bundled MobileNetV2 model)', () => {
  let provider: NsfwjsProvider;

  beforeAll(async () => {
    provider = await loadNsfwjsProvider({ model: 'MobileNetV2', minConfidence: 60, limits: defaultLimits });
  });
  afterAll(() => provider?.close?.());

  it('runs on the WASM backend with the model input size', () => {
    expect(tf.getBackend()).toBe('wasm');
    expect(provider.inputSize).toBe(224);
  });

  it('approves the real photos, with Neutral the top class for most of them', async () => {
    const tops: string[] = [];
    for (const name of photos) {
      const image = await photo(name);
      const scores = await provider.classify(image);
      const sum = nsfwClasses.reduce((total, c) => total + scores[c], 0);
      expect(sum, name).toBeCloseTo(1, 3);
      const meta = await sharp(image).metadata();
      const labels = await provider.moderate({ bucket: 'avatars', key: `uploads/p/${name}`, image, format: meta.format as 'jpeg', width: meta.width, height: meta.height });
      expect(decide(labels, defaultPolicy), name).toEqual({ outcome: 'approved' });
      tops.push(top(scores));
    }
    expect(tops.filter((t) => t === 'Neutral').length).toBeGreaterThanOrEqual(3);
  });

  it('gives the same scores when images arrive together (inference is serialized) and leaks no tensors', async () => {
    const images = await Promise.all(photos.map(photo));
    const sequential: ClassScores[] = [];
    for (const image of images) sequential.push(await provider.classify(image));
    const tensors = tf.memory().numTensors;
    const parallel = await Promise.all(images.map((image) => provider.classify(image)));
    for (const [i, scores] of parallel.entries()) {
      for (const c of nsfwClasses) expect(scores[c]).toBeCloseTo(sequential[i]![c], 5);
    }
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('handles transparency and greyscale input', async () => {
    const rgba = await sharp({ create: { width: 300, height: 200, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const grey = await sharp(await photo('leaf.jpg')).greyscale().png().toBuffer();
    for (const image of [rgba, grey]) {
      const scores = await provider.classify(image);
      expect(nsfwClasses.reduce((total, c) => total + scores[c], 0)).toBeCloseTo(1, 3);
    }
  });
});

describe('nsfwjs class -> taxonomy v7 label mapping', () => {
  const scores = (s: Partial<ClassScores>): ClassScores => ({ Drawing: 0, Hentai: 0, Neutral: 0, Porn: 0, Sexy: 0, ...s });

  it('maps Porn and Hentai to Explicit (their sum), Sexy to Non-Explicit Nudity, the rest to nothing', () => {
    expect(labelsFromScores(scores({ Porn: 0.5, Hentai: 0.3, Neutral: 0.2 }), 60)).toEqual([{ name: 'Explicit', confidence: 80 }]);
    expect(labelsFromScores(scores({ Sexy: 0.7123, Neutral: 0.2877 }), 60)).toEqual([
      { name: 'Non-Explicit Nudity of Intimate parts and Kissing', confidence: 71.23 },
    ]);
    expect(labelsFromScores(scores({ Neutral: 0.6, Drawing: 0.4 }), 0)).toEqual([
      { name: 'Explicit', confidence: 0 },
      { name: 'Non-Explicit Nudity of Intimate parts and Kissing', confidence: 0 },
    ]);
  });

  it('reports only labels at or above the minimum confidence', () => {
    expect(labelsFromScores(scores({ Porn: 0.5999, Neutral: 0.4001 }), 60)).toEqual([]);
    expect(labelsFromScores(scores({ Porn: 0.6, Neutral: 0.4 }), 60)).toEqual([{ name: 'Explicit', confidence: 60 }]);
  });
});
