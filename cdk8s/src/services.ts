/**
 * How each service runs: request timeout, scratch space and the variables it needs beyond the
 * shared ConfigMap. Scaling and resources are values (services.<name> in values.yaml): image work
 * (moderate, thumbnail) is CPU-bound and memory-hungry, so it takes a few requests per pod; the
 * HTTP APIs are I/O-bound and take many.
 */
import { eventAudience, eventConsumers, sinkBound, type ServiceName } from '@avatar-pipeline/kit/topology';
import { asText, choose, Condition, helmExpr } from './helm.js';
import type { EnvVar } from './knative.js';
import { settings } from './values.js';

export interface ServiceProfile {
  /** Longest request (Knative `timeoutSeconds`); above the Triggers' delivery timeouts. */
  readonly timeoutSeconds: number;
  /** Size of the writable /tmp (the root filesystem is read-only). */
  readonly tmpSize: string;
  /** Seconds from the container's start to its first liveness probe: the service listens only once it is ready to serve. */
  readonly livenessDelaySeconds: number;
  /** Reads the VAPID Secret (when the keys live in one): keeps its service account token, and may get the Secret (vapid.ts). */
  readonly readsVapidSecret: boolean;
  /** Its variables beyond the shared ConfigMap. */
  readonly env: () => EnvVar[];
}

const value = (name: string, v: string): EnvVar => ({ name, value: v });
const secret = (name: string, secretName: string, key: string): EnvVar => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });

export const WEBHOOK_SECRET = 's3-source-webhook';

/** VAPID key store settings, shared by push, subscribe and the init Job (the store ignores the other store's). */
export function vapidEnv(): EnvVar[] {
  const { vapid } = settings;
  return [value('VAPID_STORE', vapid.store), value('VAPID_SSM_PREFIX', vapid.ssmPrefix), value('VAPID_SECRET_NAME', vapid.secretName)];
}

/** Where the kubelet mounts a pod's service account token and the cluster CA. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** An event endpoint's own audience, and when the keys are the Kubernetes API's, the means to read them. */
export function eventEndpointEnv(name: ServiceName): EnvVar[] {
  if (!eventConsumers.has(name)) return [];
  const fromApi = settings.eventsOidc.fromKubernetesApi;
  return [
    value('EVENTS_OIDC_AUDIENCES', eventAudience(settings.namespace, name)),
    // Empty counts as unset.
    value('EVENTS_OIDC_JWKS_TOKEN_FILE', choose(fromApi, `${SERVICE_ACCOUNT_DIR}/token`)),
    value('NODE_EXTRA_CA_CERTS', choose(fromApi, `${SERVICE_ACCOUNT_DIR}/ca.crt`)),
  ];
}

/** Where a SinkBinding mounts the broker's OIDC token (read only when `authentication-oidc` is on). */
export function sinkTokenEnv(name: ServiceName): EnvVar[] {
  return sinkBound.has(name) ? [value('K_SINK_OIDC_TOKEN_FILE', '/oidc/token')] : [];
}

/** When the service keeps its service account token: to read the VAPID Secret, or the Kubernetes API's JWKS. */
export function needsApiToken(name: ServiceName): Condition {
  const conditions = [
    ...(serviceProfiles[name].readsVapidSecret ? [settings.vapid.inSecret] : []),
    ...(eventConsumers.has(name) ? [settings.eventsOidc.fromKubernetesApi] : []),
  ];
  return conditions.length === 0 ? new Condition('false') : new Condition(`(or false ${conditions.map((c) => c.expression).join(' ')})`);
}

/** A Condition as a boolean field. */
export const asBoolean = (condition: Condition): boolean => helmExpr<boolean>(condition.expression);

/**
 * The reconciler's deadlines: the CronJob ends uploads (and reviews) past them and deletes superseded
 * avatars after their retention; profile reports the uploads it has not ended (avatarpipeline_uploads_overdue_seconds).
 */
export function reconcilerDeadlinesEnv(): EnvVar[] {
  return [
    value('UPLOAD_PENDING_TIMEOUT_SECONDS', asText(settings.reconciler.pendingTimeoutSeconds)),
    value('UPLOAD_PROCESSING_TIMEOUT_SECONDS', asText(settings.reconciler.processingTimeoutSeconds)),
    value('REVIEW_TIMEOUT_SECONDS', asText(settings.reconciler.reviewTimeoutSeconds)),
    value('AVATAR_RETAIN_SECONDS', asText(settings.reconciler.avatarRetainSeconds)),
  ];
}

/** glibc malloc arenas fragment badly under libvips' threads. */
const sharpEnv = [value('MALLOC_ARENA_MAX', '2')];

const httpApi = { tmpSize: '16Mi', livenessDelaySeconds: 5, readsVapidSecret: false } as const;

export const serviceProfiles: Readonly<Record<ServiceName, ServiceProfile>> = {
  presign: { ...httpApi, timeoutSeconds: 30, env: () => [value('S3_PUBLIC_URL', settings.s3PublicUrl)] },
  's3-source': {
    ...httpApi,
    timeoutSeconds: 60,
    // Only the webhook mode runs as a Knative Service; the SQS poller is a Deployment (s3-source.ts).
    env: () => [secret('WEBHOOK_AUTH_TOKEN', WEBHOOK_SECRET, 'token')],
  },
  moderate: {
    timeoutSeconds: 120,
    tmpSize: '64Mi',
    // It loads its moderation provider (the nsfwjs model) before it listens.
    livenessDelaySeconds: 20,
    readsVapidSecret: false,
    env: () => [
      value('MODERATION_PROVIDER', settings.moderation.provider),
      value('MODERATION_MIN_CONFIDENCE', asText(settings.moderation.minConfidence)),
      value('MODERATION_POLICY', settings.moderation.policy),
      value('BAN_MAX_DISTANCE', asText(settings.moderation.banMaxDistance)),
      ...sharpEnv,
    ],
  },
  thumbnail: { timeoutSeconds: 120, tmpSize: '64Mi', livenessDelaySeconds: 5, readsVapidSecret: false, env: () => sharpEnv },
  profile: {
    ...httpApi,
    timeoutSeconds: 60,
    env: () => [
      value('MEDIA_BASE_URL', settings.mediaBaseUrl),
      value('S3_PUBLIC_URL', settings.s3PublicUrl),
      value('COGNITO_USER_POOL_ID', settings.cognitoUserPoolId),
      ...reconcilerDeadlinesEnv(),
    ],
  },
  subscribe: { ...httpApi, timeoutSeconds: 30, readsVapidSecret: true, env: vapidEnv },
  push: {
    ...httpApi,
    timeoutSeconds: 60,
    readsVapidSecret: true,
    env: () => [...vapidEnv(), value('VAPID_SUBJECT', settings.vapid.subject)],
  },
};
