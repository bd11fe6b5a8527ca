/**
 * The chart's settings as the cdk8s code sees them: placeholders for the values in
 * cdk8s/chart/values.yaml (copied into the chart), so one chart serves every cluster and
 * environment facts (accounts, domains, certificates) live only in values files.
 */
import { Condition, choose, helmExpr, num, operand, releaseNamespace, text, value, valuesRef } from './helm.js';
import type { ServiceName } from '@avatar-pipeline/kit/topology';
import type { Resources } from './knative.js';

/** Workloads that get their own ServiceAccount (and, on EKS, their own IAM role). */
export type Workload = ServiceName | 'vapid-init' | 'reconciler';

/** The documented environments: cdk8s/chart/values-<name>.yaml. */
export const environmentNames = ['kind', 'eks'] as const;
export type EnvironmentName = (typeof environmentNames)[number];
export const valuesFile = (environment: EnvironmentName) => `values-${environment}.yaml`;

/** The environment named by AVATAR_ENV (`kind` when unset): the live suite's target. */
export function environmentFromEnv(value = process.env['AVATAR_ENV']): EnvironmentName {
  const name = value ?? 'kind';
  if (!environmentNames.includes(name as EnvironmentName)) throw new Error(`AVATAR_ENV must be ${environmentNames.join(' or ')}, not ${name}`);
  return name as EnvironmentName;
}

const ns = releaseNamespace();

/** A list value as one comma-separated variable. */
const joined = (...path: string[]) => helmExpr(`join "," (${valuesRef(path)})`);

/** In-cluster URL of a Service (a Knative Service's cluster-local address) in the release namespace. */
export const serviceUrl = (service: string) => `http://${service}.${ns}.svc.cluster.local`;

/** `<registry>/<repository>/<name>:<tag>`: a per-image tag (skaffold's), else the chart's, else appVersion. */
export function builtImage(name: string): string {
  const tag = `default (default .Chart.AppVersion (${valuesRef(['image', 'tag'])})) (index (${valuesRef(['image', 'tags'])}) ${JSON.stringify(name)})`;
  const registry = `ternary (print (${valuesRef(['image', 'registry'])}) "/") "" (not (empty (${valuesRef(['image', 'registry'])})))`;
  return `${helmExpr(registry)}${text('image', 'repository')}/${name}:${helmExpr(tag)}`;
}

export const settings = {
  namespace: ns,
  imagePullPolicy: text('image', 'pullPolicy'),
  logLevel: text('logLevel'),
  region: text('aws', 'region'),
  bucket: text('aws', 'bucket'),
  table: text('aws', 'table'),
  sqsQueueUrl: text('aws', 'sqsQueueUrl'),
  avatarMaxBytes: num('uploads', 'maxBytes'),
  mediaBaseUrl: text('mediaBaseUrl'),
  s3PublicUrl: text('s3PublicUrl'),
  auth: {
    issuer: text('auth', 'issuer'),
    /** Unset: the dev issuer's, in the release namespace, when it runs; else the services read `<issuer>/.well-known/jwks.json`. */
    jwksUrl: helmExpr(`default ${operand(choose(Condition.isTrue('devIssuer', 'enabled'), `${serviceUrl('dev-issuer')}/.well-known/jwks.json`))} (${valuesRef(['auth', 'jwksUrl'])})`),
    /** No `issuers` list: the services take `issuer` and `jwksUrl` (one form or the other, never both). */
    singleIssuer: new Condition(`(empty (${valuesRef(['auth', 'issuers'])}))`),
    issuers: joined('auth', 'issuers'),
    jwksUrls: joined('auth', 'jwksUrls'),
    audience: text('auth', 'audience'),
    clientIds: joined('auth', 'clientIds'),
    algorithms: joined('auth', 'algorithms'),
    playerClaim: text('auth', 'playerClaim'),
    accessPlayerClaim: text('auth', 'accessPlayerClaim'),
    rolesClaim: text('auth', 'rolesClaim'),
    moderatorRole: text('auth', 'moderatorRole'),
  },
  cognitoUserPoolId: text('cognito', 'userPoolId'),
  eventsOidc: {
    issuer: text('eventsOidc', 'issuer'),
    jwksUrl: text('eventsOidc', 'jwksUrl'),
    fromKubernetesApi: Condition.isTrue('eventsOidc', 'fromKubernetesApi'),
  },
  moderation: {
    provider: text('moderation', 'provider'),
    minConfidence: num('moderation', 'minConfidence'),
    banMaxDistance: num('moderation', 'banMaxDistance'),
    /** JSON, or empty for the built-in policy. */
    policy: helmExpr(`ternary "" (toJson (${valuesRef(['moderation', 'policy'])})) (empty (${valuesRef(['moderation', 'policy'])}))`),
  },
  vapid: {
    store: text('vapid', 'store'),
    inSecret: Condition.equals('k8s-secret', 'vapid', 'store'),
    subject: text('vapid', 'subject'),
    secretName: text('vapid', 'secretName'),
    ssmPrefix: text('vapid', 'ssmPrefix'),
  },
  roleArn: (workload: Workload) => text('serviceAccounts', workload, 'roleArn'),
  service: (name: ServiceName) => ({
    minScale: num('services', name, 'minScale'),
    maxScale: num('services', name, 'maxScale'),
    target: num('services', name, 'target'),
    containerConcurrency: num('services', name, 'containerConcurrency'),
    resources: value<Resources>('services', name, 'resources'),
  }),
  s3Source: {
    polls: Condition.equals('sqs', 's3Source', 'mode'),
    webhookToken: text('s3Source', 'webhookToken'),
    keda: Condition.isTrue('s3Source', 'keda', 'enabled'),
    kedaMin: num('s3Source', 'keda', 'minReplicas'),
    kedaMax: num('s3Source', 'keda', 'maxReplicas'),
    kedaQueueLength: num('s3Source', 'keda', 'queueLength'),
  },
  broker: {
    class: text('broker', 'class'),
    config: value<Record<string, string>>('broker', 'config'),
  },
  gateway: {
    image: text('gateway', 'image'),
    replicas: num('gateway', 'replicas'),
    serviceType: text('gateway', 'service', 'type'),
    ingress: Condition.isTrue('gateway', 'ingress', 'enabled'),
    ingressClassName: text('gateway', 'ingress', 'className'),
    host: text('gateway', 'ingress', 'host'),
    ingressAnnotations: value<Record<string, string>>('gateway', 'ingress', 'annotations'),
    /** nginx `map` entries: one `"<origin>" $http_origin;` line per allowed origin. */
    corsOrigins: helmExpr(`include "avatar-pipeline.corsOrigins" .`),
  },
  standIns: {
    enabled: Condition.isTrue('standIns', 'enabled'),
    minioImage: text('standIns', 'minioImage'),
    dynamodbImage: text('standIns', 'dynamodbImage'),
    awsCliImage: text('standIns', 'awsCliImage'),
    accessKeyId: text('standIns', 'credentials', 'accessKeyId'),
    secretAccessKey: text('standIns', 'credentials', 'secretAccessKey'),
    minioStorage: text('standIns', 'storage', 'minio'),
    dynamodbStorage: text('standIns', 'storage', 'dynamodb'),
  },
  devIssuer: Condition.isTrue('devIssuer', 'enabled'),
  reconciler: {
    enabled: Condition.isTrue('reconciler', 'enabled'),
    schedule: text('reconciler', 'schedule'),
    pendingTimeoutSeconds: num('reconciler', 'pendingTimeoutSeconds'),
    processingTimeoutSeconds: num('reconciler', 'processingTimeoutSeconds'),
    reviewTimeoutSeconds: num('reconciler', 'reviewTimeoutSeconds'),
    avatarRetainSeconds: num('reconciler', 'avatarRetainSeconds'),
  },
  tracing: {
    /** An OTLP endpoint is set: the services export traces (and s3-source reads each upload's recorded trace from the table). */
    enabled: new Condition(`(not (empty (${valuesRef(['tracing', 'endpoint'])})))`),
    endpoint: text('tracing', 'endpoint'),
    protocol: text('tracing', 'protocol'),
    sampler: text('tracing', 'sampler'),
    samplerArg: text('tracing', 'samplerArg'),
  },
  networkPolicy: Condition.isTrue('networkPolicy', 'enabled'),
  monitoringLabels: value<Record<string, string>>('monitoring', 'selectorLabels'),
  runbookUrl: text('monitoring', 'runbookUrl'),
} as const;

export type Settings = typeof settings;
