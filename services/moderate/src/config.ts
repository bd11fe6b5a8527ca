import { z } from 'zod';
import { defaultLimits, type ImageLimits } from '@avatar-pipeline/imaging';
import { awsEnv, bucketEnv, commonEnv, env, tableEnv } from '@avatar-pipeline/kit';
import { defaultPolicy, policySchema, type Policy } from './policy.js';
import type { NsfwjsModelName } from './providers/nsfwjs.js';

/** The models bundled in the nsfwjs package. */
const nsfwjsModels = ['MobileNetV2', 'MobileNetV2Mid', 'InceptionV3'] as const satisfies readonly NsfwjsModelName[];

export const moderateEnv = {
  ...commonEnv,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  AVATAR_MAX_BYTES: env.int(defaultLimits.maxBytes, 1),
  /** `nsfwjs` runs the embedded model; `rekognition` calls Amazon Rekognition. */
  MODERATION_PROVIDER: z.enum(['nsfwjs', 'rekognition']).default('nsfwjs'),
  NSFWJS_MODEL: z.enum(nsfwjsModels).default('MobileNetV2'),
  /** Labels below this confidence (0-100) are not reported by either provider. */
  MODERATION_MIN_CONFIDENCE: z.coerce.number().min(0).max(100).default(60),
  /** JSON object of label -> blocking confidence, replacing the default policy. */
  MODERATION_POLICY: policySchema.optional(),
  IMAGE_MAX_PIXELS: env.int(defaultLimits.maxPixels, 1),
  IMAGE_MAX_SIDE: env.int(defaultLimits.maxSide, 1),
  IMAGE_MIN_SIDE: env.int(defaultLimits.minSide, 1),
};

export type ModerateConfig = z.output<z.ZodObject<typeof moderateEnv>>;

export function imageLimits(config: Pick<ModerateConfig, 'AVATAR_MAX_BYTES' | 'IMAGE_MAX_PIXELS' | 'IMAGE_MAX_SIDE' | 'IMAGE_MIN_SIDE'>): ImageLimits {
  return { maxBytes: config.AVATAR_MAX_BYTES, maxPixels: config.IMAGE_MAX_PIXELS, maxSide: config.IMAGE_MAX_SIDE, minSide: config.IMAGE_MIN_SIDE };
}

export function moderationPolicy(config: Pick<ModerateConfig, 'MODERATION_POLICY'>): Policy {
  return config.MODERATION_POLICY ?? defaultPolicy;
}
