import { z } from 'zod';
import { imageEnv } from '@avatar-pipeline/imaging';
import { awsEnv, bucketEnv, commonEnv, eventAuthEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';
import { defaultPolicy, policySchema, type Policy } from './policy.js';
import type { NsfwjsModelName } from './providers/nsfwjs.js';

/** The models bundled in the nsfwjs package. */
const nsfwjsModels = ['MobileNetV2', 'MobileNetV2Mid', 'InceptionV3'] as const satisfies readonly NsfwjsModelName[];

export const moderateEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  ...imageEnv,
  ...eventAuthEnv,
  MODERATION_PROVIDER: z
    .enum(['nsfwjs', 'rekognition'])
    .default('nsfwjs')
    .describe('`nsfwjs` runs the embedded model; `rekognition` calls Amazon Rekognition.'),
  NSFWJS_MODEL: z.enum(nsfwjsModels).default('MobileNetV2').describe('The bundled nsfwjs model.'),
  MODERATION_MIN_CONFIDENCE: z.coerce
    .number()
    .min(0)
    .max(100)
    .default(60)
    .describe('Labels under this confidence (0-100) are not reported, by either provider (nor acted on: the policy\'s lowest threshold lowers it).'),
  MODERATION_POLICY: policySchema
    .optional()
    .describe(
      'JSON object of label → blocking confidence, or → `{"block":n,"review":m}` with a review band (m < n: an upload between the two waits for a moderator), e.g. `{"Explicit":{"block":80,"review":40}}`; replaces the default policy (which has no review band).',
    ),
  BAN_MAX_DISTANCE: z.coerce
    .number()
    .int()
    .min(0)
    .max(7)
    .default(4)
    .describe('An upload whose perceptual hash is within this many bits (Hamming distance, 0-7) of a banned picture\'s is rejected `banned` before the model runs.'),
};

export type ModerateConfig = z.output<z.ZodObject<typeof moderateEnv>>;

export function moderationPolicy(config: Pick<ModerateConfig, 'MODERATION_POLICY'>): Policy {
  return config.MODERATION_POLICY ?? defaultPolicy;
}
