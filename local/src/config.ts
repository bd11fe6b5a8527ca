/** The local stack's environment: data directory, ports (0 picks a free one) and pass-through settings. */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { corsOriginsEnv, env, serviceNames, uploadLimitEnv, type ServiceName } from '@avatar-pipeline/kit';
import { logFormats, stdoutSink } from './output.js';
import type { StackOptions } from './stack.js';

/** The repository this module belongs to (local/src or local/dist is two levels down). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** `moderate` -> `MODERATE_PORT`, `s3-source` -> `S3_SOURCE_PORT`. */
export const portVariable = (name: ServiceName) => `${name.toUpperCase().replace(/-/g, '_')}_PORT`;

export const stackEnv = {
  /** Objects, table and issuer key (default: .data in the repository). */
  LOCAL_DATA_DIR: z.string().optional(),
  GATEWAY_PORT: env.port(8080),
  S3_PORT: env.port(0),
  DYNAMODB_PORT: env.port(0),
  BROKER_PORT: env.port(0),
  ...(Object.fromEntries(serviceNames.map((name) => [portVariable(name), env.port(0)])) as Record<string, ReturnType<typeof env.port>>),
  LOG_LEVEL: env.logLevel(),
  /** How the stack prints logs (default: pretty on a terminal, JSON otherwise). */
  LOG_FORMAT: z.enum(logFormats).optional(),
  AWS_REGION: z.string().default('us-east-1'),
  ...uploadLimitEnv,
  /** Origins of pages that may use the API and post uploads cross-origin (the gateway and the bucket's CORS rule). */
  ...corsOriginsEnv,
  /** How long each service may take to get ready. */
  SERVICE_READY_TIMEOUT_SECONDS: env.int(60, 1),
};

export type StackConfig = z.output<z.ZodObject<typeof stackEnv>>;

/** The stack's data directory: `LOCAL_DATA_DIR`, or .data in the repository. */
export const dataDirOf = (configured: string | undefined, repoRoot: string) => resolve(configured ?? resolve(repoRoot, '.data'));

export function stackOptions(config: StackConfig, repoRoot: string): StackOptions {
  // The per-service port variables are built from the topology, so they are looked up by name.
  const ports = config as Readonly<Record<string, unknown>>;
  const servicePorts: Partial<Record<ServiceName, number>> = {};
  for (const name of serviceNames) {
    const port = ports[portVariable(name)];
    if (typeof port === 'number' && port > 0) servicePorts[name] = port;
  }
  return {
    dataDir: dataDirOf(config.LOCAL_DATA_DIR, repoRoot),
    root: repoRoot,
    gatewayPort: config.GATEWAY_PORT,
    s3Port: config.S3_PORT,
    dynamoPort: config.DYNAMODB_PORT,
    brokerPort: config.BROKER_PORT,
    servicePorts,
    logLevel: config.LOG_LEVEL,
    region: config.AWS_REGION,
    maxUploadBytes: config.AVATAR_MAX_BYTES,
    corsOrigins: config.CORS_ORIGINS,
    readyTimeoutMs: config.SERVICE_READY_TIMEOUT_SECONDS * 1000,
    sink: stdoutSink(config.LOG_FORMAT),
  };
}
