import { imageEnv } from '@avatar-pipeline/imaging';
import { awsEnv, bucketEnv, commonEnv, env, eventAuthEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';
import { z } from 'zod';

const sizeList = env
  .list(['64', '128', '256'])
  .pipe(
    z
      .array(z.string().regex(/^\d+$/, 'sizes are whole numbers of pixels').transform(Number).pipe(z.number().int().min(16).max(1024)))
      .min(1, 'at least one size is required'),
  )
  // Sorted and unique: the set of object keys must not depend on how the list was written.
  .transform((sizes) => [...new Set(sizes)].sort((a, b) => a - b));

export const thumbnailEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...bucketEnv,
  ...tableEnv,
  ...imageEnv,
  ...eventAuthEnv,
  THUMBNAIL_SIZES: sizeList.describe('Square rendition sizes in pixels, comma-separated (16-1024 each).'),
  THUMBNAIL_FULL_MAX: env.int(1024, 64, 4096).describe('Longest side of the `full` rendition (aspect kept, never enlarged).'),
  THUMBNAIL_QUALITY: env.int(80, 1, 100).describe('WebP quality of the renditions.'),
};

export type ThumbnailConfig = z.output<z.ZodObject<typeof thumbnailEnv>>;

