import { imageEnv } from '@avatar-pipeline/imaging';
import { awsEnv, bucketEnv, commonEnv, env, eventAuthEnv, tableEnv } from '@avatar-pipeline/kit';
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
  ...awsEnv,
  ...bucketEnv,
  ...tableEnv,
  ...imageEnv,
  ...eventAuthEnv,
  /** Square sizes in pixels, e.g. `64,128,256`. */
  THUMBNAIL_SIZES: sizeList,
  /** Longest side of the `full` rendition (aspect kept, never enlarged). */
  THUMBNAIL_FULL_MAX: z.coerce.number().int().min(64).max(4096).default(1024),
  THUMBNAIL_QUALITY: z.coerce.number().int().min(1).max(100).default(80),
};

export type ThumbnailConfig = z.output<z.ZodObject<typeof thumbnailEnv>>;

