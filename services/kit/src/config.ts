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
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
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
  PORT: env.port(8080),
  /** Listen address: all interfaces in a container; the local stack keeps services on loopback. */
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: env.logLevel(),
  /** Seconds to wait for in-flight requests after SIGTERM. */
  SHUTDOWN_GRACE_SECONDS: env.int(20),
};

/** AWS clients: region plus optional endpoint overrides for local or in-cluster stand-ins. */
export const awsEnv = {
  AWS_REGION: z.string().default('us-east-1'),
  AWS_ENDPOINT_URL_S3: env.url().optional(),
  AWS_ENDPOINT_URL_DYNAMODB: env.url().optional(),
};

/** Largest avatar upload by default: 5 MiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

/** The upload size limit, shared by presign (the POST policy) and the services that read uploads. */
export const uploadLimitEnv = {
  AVATAR_MAX_BYTES: env.int(DEFAULT_MAX_UPLOAD_BYTES, 1),
};

export const tableEnv = {
  TABLE_NAME: z.string().min(3).default('avatar-pipeline'),
};

export const bucketEnv = {
  BUCKET: z.string().min(3).default('avatars'),
};

/**
 * OIDC tokens on event deliveries (Knative Eventing's `authentication-oidc`): the issuer, the
 * audiences this service answers to and the JWKS, all set or none (see `eventAuthFromConfig`).
 */
export const eventAuthEnv = {
  EVENTS_OIDC_ISSUER: z.string().min(1).optional(),
  EVENTS_OIDC_AUDIENCES: env.list(),
  EVENTS_OIDC_JWKS_URL: env.url().optional(),
  /** Sent as the bearer token when fetching the JWKS: the Kubernetes API serves its own only to service accounts. */
  EVENTS_OIDC_JWKS_TOKEN_FILE: z.string().min(1).optional(),
  EVENTS_OIDC_ALGORITHMS: env.list(['RS256', 'ES256']),
};

export type EventAuthConfig = z.output<z.ZodObject<typeof eventAuthEnv>>;

/** With `authentication-oidc` the broker takes only events with a token: a SinkBinding mounts one (at /oidc/token). */
export const sinkTokenEnv = {
  K_SINK_OIDC_TOKEN_FILE: z.string().min(1).optional(),
};
