/**
 * Each service's environment in the local stack: the same variables the cluster sets, pointing
 * at the local stand-ins, and those its image sets (NODE_OPTIONS, MALLOC_ARENA_MAX: the kit's
 * serviceRuntime). Whatever else is in the stack's own environment (MODERATION_PROVIDER,
 * THUMBNAIL_SIZES, ...) passes through underneath.
 */
import { runtimeEnv } from '@avatar-pipeline/kit/runtime';
import { eventAudience, sinkBound, type ServiceName } from '@avatar-pipeline/kit/topology';
import { DEV_ALGORITHM } from '../stand-ins/issuer.js';
import { LOCAL_CREDENTIALS } from '../stand-ins/s3.js';

export const LOCAL_BUCKET = 'avatars';
export const LOCAL_TABLE = 'avatar-pipeline';
export const LOCAL_AUDIENCE = 'avatar-pipeline';
/** The namespace the cluster runs in: part of each service's event audience. */
export const LOCAL_NAMESPACE = 'avatar-pipeline';

export interface StackAddresses {
  /** The public origin: issuer, media and upload URLs are built on it. */
  gatewayUrl: string;
  /** The same gateway by IP, for calls from the services themselves (the JWKS). */
  internalGatewayUrl: string;
  brokerUrl: string;
  s3Endpoint: string;
  dynamoEndpoint: string;
}

export interface ServiceEnvOptions {
  inherited: Readonly<Record<string, string | undefined>>;
  addresses: StackAddresses;
  logLevel: string;
  region: string;
  maxUploadBytes: number;
  /** Seconds a service may drain after SIGTERM. */
  shutdownGraceSeconds: number;
  /** The secret s3-source requires on its webhook. */
  webhookToken: string;
  /** The VAPID key pair (the stack creates it before push and subscribe start). */
  vapidFile: string;
}

/**
 * The reconciler runs on a timer inside profile locally (the cluster runs it as a CronJob): every
 * minute unless RECONCILE_PERIOD_SECONDS says otherwise (its timeouts pass through as they are).
 */
export const LOCAL_RECONCILE_PERIOD_SECONDS = 60;

/** VAPID `sub` for local runs: push services want a contact that is not localhost. */
const LOCAL_VAPID_SUBJECT = 'mailto:avatar-pipeline@example.com';

export function serviceEnv(name: ServiceName, options: ServiceEnvOptions): Record<string, string | undefined> {
  const { addresses } = options;
  // The process starts as in its image (the kit's serviceRuntime): the stack's own environment
  // may override, as a pod's may; node options it has come after the service's own.
  const runtime = runtimeEnv(name);
  const inheritedNodeOptions = options.inherited['NODE_OPTIONS']?.trim();
  return {
    ...runtime,
    ...options.inherited,
    NODE_OPTIONS: inheritedNodeOptions ? `${runtime.NODE_OPTIONS} ${inheritedNodeOptions}` : runtime.NODE_OPTIONS,
    // Internal endpoints (events, dead letters, metrics) stay off the network; the gateway is the way in.
    HOST: '127.0.0.1',
    LOG_LEVEL: options.logLevel,
    SHUTDOWN_GRACE_SECONDS: String(options.shutdownGraceSeconds),
    AWS_REGION: options.region,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_S3: addresses.s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: addresses.dynamoEndpoint,
    TABLE_NAME: LOCAL_TABLE,
    BUCKET: LOCAL_BUCKET,
    AVATAR_MAX_BYTES: String(options.maxUploadBytes),
    JWT_ISSUER: addresses.gatewayUrl,
    JWT_AUDIENCE: LOCAL_AUDIENCE,
    JWT_JWKS_URL: `${addresses.internalGatewayUrl}/.well-known/jwks.json`,
    JWT_ALGORITHMS: DEV_ALGORITHM,
    // Deliveries carry an OIDC token as with Knative's authentication-oidc, signed by the dev issuer.
    EVENTS_OIDC_ISSUER: addresses.gatewayUrl,
    EVENTS_OIDC_AUDIENCES: eventAudience(LOCAL_NAMESPACE, name),
    EVENTS_OIDC_JWKS_URL: `${addresses.internalGatewayUrl}/.well-known/jwks.json`,
    EVENTS_OIDC_ALGORITHMS: DEV_ALGORITHM,
    MEDIA_BASE_URL: `${addresses.gatewayUrl}/media`,
    S3_PUBLIC_URL: `${addresses.gatewayUrl}/s3`,
    K_SINK: sinkBound.has(name) ? addresses.brokerUrl : undefined,
    WEBHOOK_AUTH_TOKEN: name === 's3-source' ? options.webhookToken : undefined,
    VAPID_STORE: 'file',
    VAPID_FILE: options.vapidFile,
    VAPID_SUBJECT: options.inherited['VAPID_SUBJECT'] ?? LOCAL_VAPID_SUBJECT,
    RECONCILE_PERIOD_SECONDS: name === 'profile' ? (options.inherited['RECONCILE_PERIOD_SECONDS'] ?? String(LOCAL_RECONCILE_PERIOD_SECONDS)) : undefined,
  };
}
