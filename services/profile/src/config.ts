/** The profile service's environment. */
import { z } from 'zod';
import { authEnv, awsEnv, bucketEnv, commonEnv, env, eventAuthEnv, sinkTokenEnv, tableEnv } from '@avatar-pipeline/kit';
import { reconcileTimeoutsEnv } from './reconcile-config.js';

export const profileEnv = {
  ...commonEnv,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  ...authEnv,
  ...eventAuthEnv,
  /** Public base of the avatar objects (a CDN origin); a trailing slash is dropped. */
  MEDIA_BASE_URL: env.url().transform((url) => url.replace(/\/+$/, '')),
  /**
   * Where `avatarpipeline.avatar.failed` is posted (Knative does not forward dead-letter-sink
   * replies). Required: without it failures would be recorded but never announced.
   */
  K_SINK: env.url(),
  ...sinkTokenEnv,
  /** Also mirror the 128 px avatar into this Cognito user pool's `picture` attribute. */
  COGNITO_USER_POOL_ID: z
    .string()
    .regex(/^[\w-]+_[0-9a-zA-Z]+$/, 'expected a user pool id such as us-east-1_AbC123')
    .optional(),
  AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER: env.url().optional(),
  /** The reconciler's deadlines: profile reports uploads waiting past them (`overdue.ts`), and its local timer ends them. */
  ...reconcileTimeoutsEnv,
};

export type ProfileConfig = z.output<z.ZodObject<typeof profileEnv>>;
