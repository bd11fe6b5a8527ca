/** Environment of the s3-source service. */
import { z } from 'zod';
import { awsEnv, commonEnv, ConfigError, env, loadConfig, sinkTokenEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';

export const s3SourceEnv = {
  ...commonEnv,
  ...tracingEnv,
  AWS_REGION: awsEnv.AWS_REGION,
  AWS_ENDPOINT_URL_SQS: env.url().optional().describe('SQS endpoint override, for a stand-in.'),
  /** Read only with tracing on, for the trace presign recorded with each upload, which its event continues (s3-source then needs `dynamodb:GetItem` on the table). */
  ...tableEnv,
  AWS_ENDPOINT_URL_DYNAMODB: awsEnv.AWS_ENDPOINT_URL_DYNAMODB,
  K_SINK: env.url().describe('Where the events go: the broker (a SinkBinding sets it).'),
  ...sinkTokenEnv,
  /** MinIO sends a token without a space as `Bearer <token>`, and one with a space verbatim. */
  WEBHOOK_AUTH_TOKEN: z
    .string()
    .regex(/^\S+$/, 'must not contain whitespace')
    .optional()
    .describe('Webhook mode: the bearer token MinIO\'s webhook must send (its `auth_token`); required unless WEBHOOK_AUTH_DISABLED=true; refused next to SQS_QUEUE_URL.'),
  WEBHOOK_AUTH_DISABLED: env
    .bool(false)
    .describe('Webhook mode: serve the webhook without a token (local experiments only; warns at start); refused next to a token or SQS_QUEUE_URL.'),
  SQS_QUEUE_URL: env
    .url()
    .optional()
    .describe('Selects the input: set, s3-source long-polls this queue and serves no webhook (SQS mode); unset, it serves the webhook (webhook mode).'),
  /** Make it longer than delivering a message's events takes (each event: up to 3 attempts of at most 10 s). */
  SQS_VISIBILITY_TIMEOUT_SECONDS: env
    .int(60, 1, 43_200)
    .describe('SQS mode: how long a received message stays hidden; handling a message stops 5 s (at most a quarter) before that and an unfinished message is redelivered.'),
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
