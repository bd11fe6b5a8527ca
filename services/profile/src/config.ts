/** The profile service's environment. */
import { z } from 'zod';
import { awsEnv, browserS3Env, bucketEnv, commonEnv, env, eventAuthEnv, sinkTokenEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { authEnv } from '@avatar-pipeline/kit/player-auth-config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';
import { reconcileTimeoutsEnv, reconcileTimerEnv } from './reconcile-config.js';

export const profileEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...tableEnv,
  ...bucketEnv,
  ...browserS3Env,
  ...authEnv,
  ...eventAuthEnv,
  MEDIA_BASE_URL: env
    .url()
    .transform((url) => url.replace(/\/+$/, ''))
    .describe('Public base URL of the avatar objects (a CDN whose origin is the bucket\'s `avatars/`); a trailing slash is dropped.'),
  /** Knative does not forward dead-letter-sink replies: without it failures would be recorded but never announced. */
  K_SINK: env.url().describe('Where the dead-letter sink posts `failed` (and `ready` of a dead `thumbnailed`): the broker (a SinkBinding sets it).'),
  ...sinkTokenEnv,
  COGNITO_USER_POOL_ID: z
    .string()
    .regex(/^[\w-]+_[0-9a-zA-Z]+$/, 'expected a user pool id such as us-east-1_AbC123')
    .optional()
    .describe('Also set the Cognito `picture` attribute (username = player id) to the 128 px avatar, best effort: never holds back `ready`.'),
  AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER: env.url().optional().describe('Cognito endpoint override, for a stand-in.'),
  /** The reconciler's deadlines: profile reports uploads waiting past them (`overdue.ts`), and its local timer ends them. */
  ...reconcileTimeoutsEnv,
  ...reconcileTimerEnv,
};

export type ProfileConfig = z.output<z.ZodObject<typeof profileEnv>>;
