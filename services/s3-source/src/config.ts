/** Environment of the s3-source service. */
import { z } from 'zod';
import { awsEnv, commonEnv, env } from '@avatar-pipeline/kit';

export const s3SourceEnv = {
  ...commonEnv,
  AWS_REGION: awsEnv.AWS_REGION,
  AWS_ENDPOINT_URL_SQS: env.url().optional(),
  /** Where events go: set by a Knative SinkBinding or ContainerSource. */
  K_SINK: env.url(),
  /** MinIO sends a token without a space as `Bearer <token>`, and one with a space verbatim. */
  WEBHOOK_AUTH_TOKEN: z.string().regex(/^\S+$/, 'must not contain whitespace').optional(),
  /** Poll this queue for S3 notifications (AWS); unset means webhook only. */
  SQS_QUEUE_URL: env.url().optional(),
  /** How long a received message stays hidden: longer than it takes to deliver its events. */
  SQS_VISIBILITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(43_200).default(60),
};

export type S3SourceConfig = z.output<z.ZodObject<typeof s3SourceEnv>>;
