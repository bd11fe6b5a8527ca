import { z } from 'zod';
import { imageEnv } from '@avatar-pipeline/imaging';
import { awsEnv, bucketEnv, commonEnv, eventAuthEnv, tableEnv, tracingEnv } from '@avatar-pipeline/kit';
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
  MODERATION_MIN_CONFIDENCE: z.coerce.number().min(0).max(100).default(60).describe('Labels under this confidence (0-100) are not reported, by either provider.'),
  MODERATION_POLICY: policySchema
    .optional()
    .describe('JSON object of label → blocking confidence, e.g. `{"Explicit":60}`, replacing the default policy.'),
};

export type ModerateConfig = z.output<z.ZodObject<typeof moderateEnv>>;

export function moderationPolicy(config: Pick<ModerateConfig, 'MODERATION_POLICY'>): Policy {
  return config.MODERATION_POLICY ?? defaultPolicy;
}
