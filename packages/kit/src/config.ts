/** Typed configuration from the environment. A bad or missing variable stops start-up with one line naming it. */
import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parse `env` with `shape`; empty strings count as unset, as in most deploy tooling. */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  env: Readonly<Record<string, string | undefined>> = process.env,
): z.output<z.ZodObject<S>> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = z.object(shape).safeParse(cleaned);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = issue.path.join('.') || '(environment)';
      return cleaned[name] === undefined && issue.code === 'invalid_type'
        ? `${name} is required`
        : `${name}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Helpers for common variable shapes. */
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  int: (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(fallback),
  number: (fallback: number, min = 0) => z.coerce.number().min(min).default(fallback),
  oneOf: <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) => z.enum(values).default(fallback),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
      .transform((v) => v === 'true' || v === '1' || v === 'yes')
      .default(fallback),
  url: () => z.url({ protocol: /^https?$/, message: 'expected an http(s) URL' }),
  list: (fallback: readonly string[] = []) =>
    z
      .string()
      .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .default([...fallback]),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};

/** Variables every service reads. */
export const commonEnv = {
  PORT: env.port(8080).describe('Listen port.'),
  HOST: z
    .string()
    .min(1)
    .default('0.0.0.0')
    .describe('Listen address: all interfaces in a container; the local stack keeps services on loopback (127.0.0.1).'),
  LOG_LEVEL: env.logLevel().describe('pino log level.'),
  SHUTDOWN_GRACE_SECONDS: env.int(20).describe('Drain time after SIGTERM: how long in-flight requests may finish.'),
};

/** AWS clients: region plus optional endpoint overrides for local or in-cluster stand-ins. */
export const awsEnv = {
  AWS_REGION: z.string().default('us-east-1').describe('AWS region of the clients.'),
  AWS_ENDPOINT_URL_S3: env.url().optional().describe('S3 endpoint override, for a stand-in (MinIO, s3rver).'),
  AWS_ENDPOINT_URL_DYNAMODB: env.url().optional().describe('DynamoDB endpoint override, for a stand-in (DynamoDB Local, dynalite).'),
};

/** Largest avatar upload by default: 5 MiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

/** The upload size limit, shared by presign (the POST policy) and the services that read uploads. */
export const uploadLimitEnv = {
  AVATAR_MAX_BYTES: env.int(DEFAULT_MAX_UPLOAD_BYTES, 1).describe('Largest upload in bytes: the POST policy allows no more, and the services reading uploads check it again.'),
};

export const tableEnv = {
  TABLE_NAME: z.string().min(3).default('avatar-pipeline').describe('The DynamoDB table (one table for every record).'),
};

export const bucketEnv = {
  BUCKET: z.string().min(3).default('avatars').describe('The S3 bucket: uploads under `uploads/`, avatars under `avatars/`.'),
};

/** Where browsers reach S3 when it is not S3's own URL (a stand-in behind the gateway). */
export const browserS3Env = {
  S3_PUBLIC_URL: env
    .url()
    .transform((url) => url.replace(/\/+$/, ''))
    .optional()
    .describe(
      'Public base URL browsers reach the bucket at (`<url>/<bucket>`), e.g. http://localhost:8080/s3: upload forms post there, moderators\' image links point there (unset: the URL S3 itself gives).',
    ),
};

/**
 * A URL S3 (path-style, as a stand-in serves it) gave for the bucket, as browsers reach it: the
 * public base in place of its origin. A presigned URL stays valid when the proxy at the public base
 * forwards to S3 under the signed host (the gateway's `/s3` route does).
 */
export const browserS3Url = (url: string, publicUrl: string | undefined): string => {
  if (publicUrl === undefined) return url;
  const { pathname, search } = new URL(url);
  return `${publicUrl}${pathname}${search}`;
};

/**
 * OIDC tokens on event deliveries (Knative Eventing's `authentication-oidc`): the issuer, the
 * audiences this service answers to and the JWKS, all set or none (see `eventAuthFromConfig`).
 */
export const eventAuthEnv = {
  EVENTS_OIDC_ISSUER: z
    .string()
    .min(1)
    .optional()
    .describe(
      'The `iss` of the OIDC token every event delivery must carry. EVENTS_OIDC_ISSUER, EVENTS_OIDC_AUDIENCES and EVENTS_OIDC_JWKS_URL are set together or not at all (none: any event is taken, with a warning at start).',
    ),
  EVENTS_OIDC_AUDIENCES: env.list().describe('Accepted `aud` of delivery tokens, comma-separated.'),
  EVENTS_OIDC_JWKS_URL: env.url().optional().describe('The signing keys of delivery tokens.'),
  EVENTS_OIDC_JWKS_TOKEN_FILE: z
    .string()
    .min(1)
    .optional()
    .describe('Bearer token sent when fetching that JWKS (the pod\'s service account token: the Kubernetes API serves its JWKS to service accounts only).'),
  EVENTS_OIDC_ALGORITHMS: env.list(['RS256', 'ES256']).describe('Allowed algorithms of delivery tokens.'),
};

export type EventAuthConfig = z.output<z.ZodObject<typeof eventAuthEnv>>;

/** With `authentication-oidc` the broker takes only events with a token: a SinkBinding mounts one (at /oidc/token). */
export const sinkTokenEnv = {
  K_SINK_OIDC_TOKEN_FILE: z
    .string()
    .min(1)
    .optional()
    .describe('Bearer token for K_SINK, re-read per event (`/oidc/token`: what a SinkBinding mounts with `authentication-oidc`).'),
};
