/** Presign's environment: the kit's common, AWS, table, bucket and player-auth variables, and its own. */
import { awsEnv, browserS3Env, bucketEnv, commonEnv, env, tableEnv, uploadLimitEnv } from '@avatar-pipeline/kit/config';
import { authEnv } from '@avatar-pipeline/kit/player-auth-config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';

export const allowedContentTypes = ['image/jpeg', 'image/png', 'image/webp'] as const;
export type AllowedContentType = (typeof allowedContentTypes)[number];

export const presignEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  ...authEnv,
  ...uploadLimitEnv,
  /** Kept short because a ticket is a bearer capability. */
  PRESIGN_EXPIRES_SECONDS: env.int(300, 1, 3600).describe('Lifetime of a presigned POST policy.'),
  /** A POST policy signature covers the policy, not the host, so the URL may be swapped freely. */
  ...browserS3Env,
  RATE_LIMIT_UPLOADS: env.int(10, 1).describe('Uploads per player per window.'),
  RATE_LIMIT_WINDOW_SECONDS: env.int(60, 1).describe('The rate-limit window.'),
};
