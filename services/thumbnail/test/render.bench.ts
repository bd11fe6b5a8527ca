/**
 * Render cost per upload as the service pays it (inspect, then render every rendition), on the
 * photo fixtures: one at a time, and two side by side as the render queue allows.
 *
 *   npx vitest bench --run services/thumbnail
 *
 * For "2 in parallel" one iteration renders two images: time per image is half the mean.
 */
import { defaultLimits, inspectImage } from '@avatar-pipeline/imaging';
import { bench, describe } from 'vitest';
import { tuneLibvips } from '@avatar-pipeline/imaging';
import { renderAvatar, type RenderOptions } from '../src/render.js';
import { photo } from './helpers.js';

tuneLibvips();
const options: RenderOptions = { sizes: [64, 128, 256], fullMax: 1024, crop: 'attention', quality: 80, limits: defaultLimits };

async function work(buf: Buffer): Promise<void> {
  const image = await inspectImage(buf, options.limits);
  if (!image.ok) throw new Error(image.problem.message);
  await renderAvatar(buf, image, options);
}

for (const file of ['cups-exif-rotated.jpg', 'leaf.jpg', 'path.png', 'autumn.webp']) {
  const buf = await photo(file);
  describe(file, () => {
    bench('serial', () => work(buf), { time: 3000, warmupIterations: 3 });
    bench('2 in parallel', () => Promise.all([work(buf), work(buf)]).then(() => undefined), { time: 3000, warmupIterations: 3 });
  });
}
