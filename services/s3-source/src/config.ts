/** Environment of the s3-source service. */
import { z } from 'zod';
import { ConfigError, awsEnv, commonEnv, env, sinkTokenEnv } from '@avatar-pipeline/kit';

export const s3SourceEnv = {
  ...commonEnv,
  AWS_REGION: awsEnv.AWS_REGION,
  AWS_ENDPOINT_URL_SQS: env.url().optional(),
  /** Where events go: set by a Knative SinkBinding or ContainerSource. */
  K_SINK: env.url(),
  ...sinkTokenEnv,
  /** MinIO sends a token without a space as `Bearer <token>`, and one with a space verbatim. */
  WEBHOOK_AUTH_TOKEN: z.string().regex(/^\S+$/, 'must not contain whitespace').optional(),
  /** Serve the webhook without a token (local experiments only): see `webhookMode`. */
  WEBHOOK_AUTH_DISABLED: env.bool(false),
  /** Poll this queue for S3 notifications (AWS); unset means webhook only. */
  SQS_QUEUE_URL: env.url().optional(),
  /** How long a received message stays hidden: longer than it takes to deliver its events. */
  SQS_VISIBILITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(43_200).default(60),
};

export type S3SourceConfig = z.output<z.ZodObject<typeof s3SourceEnv>>;

/** How the webhook is served: behind the token, open, or not at all (SQS is the only input). */
export type WebhookMode = { token: string } | 'open' | 'off';

/**
 * Without a token the webhook would take forged notifications from anyone who reaches it, so
 * that takes an explicit WEBHOOK_AUTH_DISABLED=true; a poller of SQS needs no webhook at all.
 */
export function webhookMode(config: Pick<S3SourceConfig, 'WEBHOOK_AUTH_TOKEN' | 'WEBHOOK_AUTH_DISABLED' | 'SQS_QUEUE_URL'>): WebhookMode {
  const { WEBHOOK_AUTH_TOKEN: token, WEBHOOK_AUTH_DISABLED: disabled } = config;
  if (token !== undefined && disabled) throw new ConfigError('invalid configuration: WEBHOOK_AUTH_DISABLED=true contradicts WEBHOOK_AUTH_TOKEN');
  if (token !== undefined) return { token };
  if (disabled) return 'open';
  if (config.SQS_QUEUE_URL !== undefined) return 'off';
  throw new ConfigError(
    'invalid configuration: WEBHOOK_AUTH_TOKEN is required (or SQS_QUEUE_URL alone, or WEBHOOK_AUTH_DISABLED=true for a webhook without auth)',
  );
}
