/** The local stack's environment: data directory, ports (0 picks a free one) and pass-through settings. */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { env, uploadLimitEnv } from '@avatar-pipeline/kit/config';
import { corsOriginsEnv } from '@avatar-pipeline/kit/cors';
import { serviceNames, type ServiceName } from '@avatar-pipeline/kit/topology';
import { logFormats, stdoutSink } from './output/log-sink.js';
import type { StackOptions } from './stack.js';

/** The repository this module belongs to (local/src or local/dist is two levels down). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** `moderate` -> `MODERATE_PORT`, `s3-source` -> `S3_SOURCE_PORT`. */
export const portVariable = (name: ServiceName) => `${name.toUpperCase().replace(/-/g, '_')}_PORT`;

export const stackEnv = {
  LOCAL_DATA_DIR: z.string().optional().describe('Where objects, the table and the issuer key are kept (default: .data in the repository).'),
  GATEWAY_PORT: env.port(8080).describe('The gateway\'s port: the API, the game client, uploads and avatars.'),
  S3_PORT: env.port(0).describe('s3rver\'s port (0: a free one).'),
  DYNAMODB_PORT: env.port(0).describe('dynalite\'s port (0: a free one).'),
  BROKER_PORT: env.port(0).describe('The broker\'s port (0: a free one).'),
  ...(Object.fromEntries(serviceNames.map((name) => [portVariable(name), env.port(0).describe(`${name}'s port (0: a free one).`)])) as Record<
    string,
    ReturnType<typeof env.port>
  >),
  LOG_LEVEL: env.logLevel().describe('pino log level of the stack and every service.'),
  LOG_FORMAT: z.enum(logFormats).optional().describe('How the stack prints logs (default: pretty on a terminal, JSON otherwise).'),
  AWS_REGION: z.string().default('us-east-1').describe('The region the stand-ins and services use.'),
  ...uploadLimitEnv,
  ...corsOriginsEnv,
  SERVICE_READY_TIMEOUT_SECONDS: env.int(60, 1).describe('How long each service may take to get ready.'),
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
