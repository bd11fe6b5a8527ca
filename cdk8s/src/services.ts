/**
 * How each service runs as a Knative Service: concurrency, autoscaling bounds, resources and the
 * variables it needs beyond the shared ConfigMap. Image work (moderate, thumbnail) is CPU-bound and
 * memory-hungry, so those take a few requests per pod; the HTTP APIs are I/O-bound and take many.
 */
import { eventAudience, eventConsumers, sinkBound, type ServiceName } from '@avatar-pipeline/kit';
import type { EnvironmentConfig } from './config.js';
import type { EnvVar, Resources } from './knative.js';

export interface ServiceProfile {
  /** Hard limit of requests in flight per pod (Knative `containerConcurrency`). */
  containerConcurrency: number;
  /** Concurrency the autoscaler aims for per pod (`autoscaling.knative.dev/target`). */
  target: number;
  minScale: number;
  maxScale: number;
  /** Longest request (Knative `timeoutSeconds`); above the Triggers' delivery timeouts. */
  timeoutSeconds: number;
  resources: Resources;
  /** Size of the writable /tmp (the root filesystem is read-only). */
  tmpSize: string;
  /** Reads the Kubernetes API (the VAPID Secret on kind): keeps its service account token. */
  needsApiAccess: (config: EnvironmentConfig) => boolean;
  env: (config: EnvironmentConfig) => EnvVar[];
}

const api = (cpu: string, memory: string, limitMemory: string): Resources => ({
  requests: { cpu, memory },
  limits: { cpu: '1', memory: limitMemory },
});

const value = (name: string, v: string): EnvVar => ({ name, value: v });
const secret = (name: string, secretName: string, key: string): EnvVar => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });
const optional = (name: string, v: string | undefined): EnvVar[] => (v === undefined ? [] : [value(name, v)]);

export const WEBHOOK_SECRET = 's3-source-webhook';

/** VAPID key store settings, shared by push, subscribe and the init Job. */
export function vapidEnv(config: EnvironmentConfig): EnvVar[] {
  const { vapid } = config;
  return vapid.store === 'ssm'
    ? [value('VAPID_STORE', 'ssm'), value('VAPID_SSM_PREFIX', vapid.ssmPrefix)]
    : [value('VAPID_STORE', 'k8s-secret'), value('VAPID_SECRET_NAME', vapid.secretName)];
}

/** Where the kubelet mounts a pod's service account token and the cluster CA. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** An event endpoint's own audience, and on kind the means to read the API's JWKS (the issuer and URL are shared). */
export function eventEndpointEnv(name: ServiceName, config: EnvironmentConfig): EnvVar[] {
  if (!eventConsumers.has(name)) return [];
  return [
    value('EVENTS_OIDC_AUDIENCES', eventAudience(config.namespace, name)),
    ...(config.eventsOidc.fromKubernetesApi
      ? [value('EVENTS_OIDC_JWKS_TOKEN_FILE', `${SERVICE_ACCOUNT_DIR}/token`), value('NODE_EXTRA_CA_CERTS', `${SERVICE_ACCOUNT_DIR}/ca.crt`)]
      : []),
  ];
}

/** Where a SinkBinding mounts the broker's OIDC token (read only when `authentication-oidc` is on). */
export function sinkTokenEnv(name: ServiceName): EnvVar[] {
  return sinkBound.has(name) ? [value('K_SINK_OIDC_TOKEN_FILE', '/oidc/token')] : [];
}

/** Keeps the service account token: to read the VAPID Secret, or the Kubernetes API's JWKS. */
export function needsApiToken(name: ServiceName, config: EnvironmentConfig): boolean {
  return serviceProfiles[name].needsApiAccess(config) || (eventConsumers.has(name) && config.eventsOidc.fromKubernetesApi);
}

const never = () => false;
const readsVapidSecret = (config: EnvironmentConfig) => config.vapid.store === 'k8s-secret';

/** glibc malloc arenas fragment badly under libvips' threads. */
const sharpEnv = [value('MALLOC_ARENA_MAX', '2')];

/** The public HTTP APIs (presign, profile, subscribe): I/O-bound, many requests per pod. */
const httpApi = {
  containerConcurrency: 50,
  target: 35,
  minScale: 0,
  maxScale: 10,
  resources: api('50m', '96Mi', '256Mi'),
  tmpSize: '16Mi',
  needsApiAccess: never,
} as const satisfies Partial<ServiceProfile>;

export const serviceProfiles: Readonly<Record<ServiceName, ServiceProfile>> = {
  presign: {
    ...httpApi,
    timeoutSeconds: 30,
    env: (config) => optional('S3_PUBLIC_URL', config.s3PublicUrl),
  },
  's3-source': {
    containerConcurrency: 20,
    target: 15,
    minScale: 0,
    maxScale: 3,
    timeoutSeconds: 60,
    resources: api('50m', '96Mi', '256Mi'),
    tmpSize: '16Mi',
    needsApiAccess: never,
    env: (config) =>
      config.sqsQueueUrl
        ? [value('SQS_QUEUE_URL', config.sqsQueueUrl)]
        : [secret('WEBHOOK_AUTH_TOKEN', WEBHOOK_SECRET, 'token')],
  },
  moderate: {
    containerConcurrency: 2,
    target: 2,
    minScale: 0,
    maxScale: 5,
    timeoutSeconds: 120,
    resources: { requests: { cpu: '500m', memory: '768Mi' }, limits: { cpu: '2', memory: '1536Mi' } },
    tmpSize: '64Mi',
    needsApiAccess: never,
    env: (config) => [value('MODERATION_PROVIDER', config.moderationProvider), ...sharpEnv],
  },
  thumbnail: {
    containerConcurrency: 4,
    target: 3,
    minScale: 0,
    maxScale: 5,
    timeoutSeconds: 120,
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '768Mi' } },
    tmpSize: '64Mi',
    needsApiAccess: never,
    env: () => sharpEnv,
  },
  profile: {
    ...httpApi,
    timeoutSeconds: 60,
    env: (config) => [value('MEDIA_BASE_URL', config.mediaBaseUrl), ...optional('COGNITO_USER_POOL_ID', config.cognitoUserPoolId)],
  },
  subscribe: {
    ...httpApi,
    timeoutSeconds: 30,
    needsApiAccess: readsVapidSecret,
    env: vapidEnv,
  },
  push: {
    containerConcurrency: 10,
    target: 8,
    minScale: 0,
    maxScale: 5,
    timeoutSeconds: 60,
    resources: api('100m', '128Mi', '384Mi'),
    tmpSize: '16Mi',
    needsApiAccess: readsVapidSecret,
    env: (config) => [...vapidEnv(config), value('VAPID_SUBJECT', config.vapid.subject)],
  },
};

/**
 * s3-source in SQS mode polls: it has no HTTP traffic to wake it, so it must not scale to zero.
 * Fed by MinIO's webhook (kind) it may: the activator holds the webhook request while a pod
 * starts, and MinIO keeps undelivered notifications in its queue directory and retries them.
 */
export function minScale(name: ServiceName, config: EnvironmentConfig): number {
  if (name === 's3-source' && config.sqsQueueUrl) return 1;
  return serviceProfiles[name].minScale;
}
