/** Environment of the s3-source service. */
import { z } from 'zod';
import { ConfigError, awsEnv, commonEnv, env, loadConfig, sinkTokenEnv, tableEnv } from '@avatar-pipeline/kit';

export const s3SourceEnv = {
  ...commonEnv,
  AWS_REGION: awsEnv.AWS_REGION,
  AWS_ENDPOINT_URL_SQS: env.url().optional(),
  /**
   * Read only with tracing on: where presign records each upload's trace, which its event
   * continues (s3-source then needs `dynamodb:GetItem` on the table).
   */
  ...tableEnv,
  AWS_ENDPOINT_URL_DYNAMODB: awsEnv.AWS_ENDPOINT_URL_DYNAMODB,
  /** Where events go: set by a Knative SinkBinding or ContainerSource. */
  K_SINK: env.url(),
  ...sinkTokenEnv,
  /** MinIO sends a token without a space as `Bearer <token>`, and one with a space verbatim. */
  WEBHOOK_AUTH_TOKEN: z.string().regex(/^\S+$/, 'must not contain whitespace').optional(),
  /** Serve the webhook without a token (local experiments only): see `inputMode`. */
  WEBHOOK_AUTH_DISABLED: env.bool(false),
  /** Poll this queue for S3 notifications (AWS) instead of serving the webhook: see `inputMode`. */
  SQS_QUEUE_URL: env.url().optional(),
  /**
   * How long a received message stays hidden. The poller stops working on a message a little
   * before it becomes visible again (it is then redelivered), so make it longer than delivering
   * its events takes (each event: up to 3 attempts of at most 10 s).
   */
  SQS_VISIBILITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(43_200).default(60),
};

export type S3SourceConfig = z.output<z.ZodObject<typeof s3SourceEnv>>;

/**
 * Where notifications come from: exactly one input per process.
 * - `webhook`: MinIO (or the local S3 server) posts them to `POST /webhook`, with the bearer
 *   `token`; `token: undefined` is a webhook open to anyone, served only on WEBHOOK_AUTH_DISABLED=true.
 * - `sqs`: long-polls `queueUrl` (AWS); no webhook route exists.
 */
export type InputMode = { input: 'webhook'; token: string | undefined } | { input: 'sqs'; queueUrl: string };

type ModeConfig = Pick<S3SourceConfig, 'WEBHOOK_AUTH_TOKEN' | 'WEBHOOK_AUTH_DISABLED' | 'SQS_QUEUE_URL'>;

/**
 * SQS_QUEUE_URL selects SQS polling; without it the webhook is served. A webhook without a token
 * would take forged notifications from anyone who reaches it, so that takes an explicit
 * WEBHOOK_AUTH_DISABLED=true. Webhook settings next to SQS_QUEUE_URL are refused rather than
 * silently ignored or served too: the process runs one input, and says which one is wrong.
 */
export function inputMode(config: ModeConfig): InputMode {
  const { WEBHOOK_AUTH_TOKEN: token, WEBHOOK_AUTH_DISABLED: disabled, SQS_QUEUE_URL: queueUrl } = config;
  if (queueUrl !== undefined) {
    if (token !== undefined) {
      throw new ConfigError('invalid configuration: WEBHOOK_AUTH_TOKEN is a webhook setting, but SQS_QUEUE_URL selects SQS polling (no webhook): set one of them');
    }
    if (disabled) {
      throw new ConfigError('invalid configuration: WEBHOOK_AUTH_DISABLED is a webhook setting, but SQS_QUEUE_URL selects SQS polling (no webhook): set one of them');
    }
    return { input: 'sqs', queueUrl };
  }
  if (token !== undefined && disabled) throw new ConfigError('invalid configuration: WEBHOOK_AUTH_DISABLED=true contradicts WEBHOOK_AUTH_TOKEN');
  if (token !== undefined || disabled) return { input: 'webhook', token };
  throw new ConfigError(
    'invalid configuration: WEBHOOK_AUTH_TOKEN is required (or SQS_QUEUE_URL to poll SQS instead, or WEBHOOK_AUTH_DISABLED=true for a webhook without auth)',
  );
}

/** The environment parsed and its input selected: every configuration error is a ConfigError naming the variable. */
export function loadS3SourceConfig(environment: Readonly<Record<string, string | undefined>> = process.env): { config: S3SourceConfig; mode: InputMode } {
  const config = loadConfig(s3SourceEnv, environment);
  return { config, mode: inputMode(config) };
}
