/**
 * Per-environment configuration: everything that differs between the kind cluster (stand-ins for
 * AWS, dev issuer) and EKS (real AWS through IRSA). The chart code reads only this and the kit's
 * topology; values for a real account are placeholders to replace before `skaffold run -p eks`.
 */
import { DEFAULT_MAX_UPLOAD_BYTES, type ServiceName } from '@avatar-pipeline/kit';

export const environmentNames = ['kind', 'eks'] as const;
export type EnvironmentName = (typeof environmentNames)[number];

/** Workloads that get their own ServiceAccount (and, on EKS, their own IAM role). */
export type Workload = ServiceName | 'vapid-init';

export interface AuthConfig {
  /** `iss` the services require. */
  issuer: string;
  /** Where the services fetch the signing keys (from inside the cluster). */
  jwksUrl: string;
  audience: string;
  algorithms: readonly string[];
  playerClaim: string;
}

/**
 * Knative's OIDC delivery tokens (Eventing feature `authentication-oidc`, which the cluster must
 * have on): issued by the cluster's service account issuer, checked by every event endpoint.
 */
export interface EventsOidcConfig {
  /** `iss` of service account tokens: the API server's --service-account-issuer. */
  issuer: string;
  /** Where the event endpoints fetch the issuer's signing keys. */
  jwksUrl: string;
  /**
   * The keys are the Kubernetes API's own (/openid/v1/jwks): served to service accounts only, over
   * the cluster CA, so those pods keep their service account token and trust its CA.
   */
  fromKubernetesApi: boolean;
}

export interface StandInsConfig {
  minioImage: string;
  dynamodbImage: string;
  /** Runs the setup Job (bucket, notification, policy, table) with the S3 and DynamoDB APIs. */
  awsCliImage: string;
  /** Dev-only credentials shared by MinIO (root user) and every client of the stand-ins. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Shared secret MinIO's webhook presents to s3-source. Dev only. */
  webhookToken: string;
  /** Volume sizes in GiB. */
  storage: { minio: number; dynamodb: number };
}

export interface IngressConfig {
  className: string;
  host: string;
  annotations: Readonly<Record<string, string>>;
}

export interface EnvironmentConfig {
  name: EnvironmentName;
  namespace: string;
  /** Image repository prefix of the built images: `${imageRepository}/<service>`; skaffold replaces the tag. */
  imageRepository: string;
  logLevel: 'debug' | 'info' | 'warn';
  region: string;
  bucket: string;
  table: string;
  avatarMaxBytes: number;
  /** Origin players reach the gateway on. */
  publicOrigin: string;
  mediaBaseUrl: string;
  /** Where browsers post uploads (the gateway's /s3 on kind); unset: the bucket's own S3 URL. */
  s3PublicUrl?: string;
  auth: AuthConfig;
  eventsOidc: EventsOidcConfig;
  moderationProvider: 'nsfwjs' | 'rekognition';
  vapid: { store: 'k8s-secret' | 'ssm'; subject: string; secretName: string; ssmPrefix: string };
  /** SQS queue with the bucket's notifications (EKS); absent: s3-source takes MinIO's webhook. */
  sqsQueueUrl?: string;
  cognitoUserPoolId?: string;
  /** IAM role per workload (IRSA); only on EKS. */
  roles?: Readonly<Partial<Record<Workload, string>>>;
  standIns?: StandInsConfig;
  /** The dev token issuer (kind only): a Deployment built from local/src/issuer.ts. */
  devIssuer: boolean;
  gateway: { image: string; replicas: number; ingress?: IngressConfig };
  /** Labels the Prometheus Operator's podMonitorSelector and ruleSelector match. */
  monitoring: { selectorLabels: Readonly<Record<string, string>> };
}

/** kube-prometheus-stack installed as release `kube-prometheus-stack` selects `release: <release>`. */
const monitoring = { selectorLabels: { release: 'kube-prometheus-stack' } };

const namespace = 'avatar-pipeline';
const cluster = (service: string) => `http://${service}.${namespace}.svc.cluster.local`;

const kindOrigin = 'http://localhost:8080';

export const kind: EnvironmentConfig = {
  name: 'kind',
  namespace,
  // Knative resolves tags to digests through the registry, which fails for images loaded with
  // `kind load`; `kind.local/` is in its default registries-skipping-tag-resolving list.
  imageRepository: 'kind.local/avatar-pipeline',
  logLevel: 'info',
  region: 'us-east-1',
  bucket: 'avatars',
  table: 'avatar-pipeline',
  avatarMaxBytes: DEFAULT_MAX_UPLOAD_BYTES,
  publicOrigin: kindOrigin,
  mediaBaseUrl: `${kindOrigin}/media`,
  s3PublicUrl: `${kindOrigin}/s3`,
  auth: {
    issuer: kindOrigin,
    jwksUrl: `${cluster('dev-issuer')}/.well-known/jwks.json`,
    audience: 'avatar-pipeline',
    algorithms: ['ES256'],
    playerClaim: 'sub',
  },
  // kind's (kubeadm's) issuer; `kubectl get --raw /.well-known/openid-configuration` shows a cluster's.
  eventsOidc: {
    issuer: 'https://kubernetes.default.svc.cluster.local',
    jwksUrl: 'https://kubernetes.default.svc/openid/v1/jwks',
    fromKubernetesApi: true,
  },
  moderationProvider: 'nsfwjs',
  vapid: { store: 'k8s-secret', subject: 'mailto:ops@example.com', secretName: 'avatar-pipeline-vapid', ssmPrefix: '/avatar-pipeline/vapid' },
  standIns: {
    // MinIO's own images left the public registries in 2026; this is a community build of the
    // same release from source (override it if your cluster mirrors another).
    minioImage: 'ghcr.io/coollabsio/minio:RELEASE.2025-10-15T17-29-55Z',
    dynamodbImage: 'amazon/dynamodb-local:2.6.1',
    awsCliImage: 'amazon/aws-cli:2.32.8',
    credentials: { accessKeyId: 'avatar-pipeline-dev', secretAccessKey: 'avatar-pipeline-dev-secret' },
    webhookToken: 'kind-dev-webhook-token',
    storage: { minio: 2, dynamodb: 1 },
  },
  devIssuer: true,
  gateway: { image: 'nginxinc/nginx-unprivileged:1.29-alpine', replicas: 1 },
  monitoring,
};

/** Placeholders: set the account, region, domain and ARNs of your AWS environment. */
const account = '123456789012';
const awsRegion = 'eu-west-1';
const role = (workload: Workload) => `arn:aws:iam::${account}:role/avatar-pipeline-${workload}`;
const userPool = `${awsRegion}_AvatarPool`;
/** The cluster's OIDC issuer (`aws eks describe-cluster --query cluster.identity.oidc.issuer`). */
const clusterIssuer = `https://oidc.eks.${awsRegion}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`;

export const eks: EnvironmentConfig = {
  name: 'eks',
  namespace,
  // skaffold prefixes it with --default-repo (the ECR registry).
  imageRepository: 'avatar-pipeline',
  logLevel: 'info',
  region: awsRegion,
  bucket: `avatar-pipeline-${account}`,
  table: 'avatar-pipeline',
  avatarMaxBytes: DEFAULT_MAX_UPLOAD_BYTES,
  publicOrigin: 'https://avatars.example.com',
  mediaBaseUrl: 'https://media.example.com',
  auth: {
    issuer: `https://cognito-idp.${awsRegion}.amazonaws.com/${userPool}`,
    jwksUrl: `https://cognito-idp.${awsRegion}.amazonaws.com/${userPool}/.well-known/jwks.json`,
    audience: 'avatar-pipeline-client-id',
    algorithms: ['RS256'],
    playerClaim: 'sub',
  },
  // EKS publishes the issuer's keys on the internet, no credentials needed.
  eventsOidc: { issuer: clusterIssuer, jwksUrl: `${clusterIssuer}/keys`, fromKubernetesApi: false },
  moderationProvider: 'rekognition',
  vapid: { store: 'ssm', subject: 'mailto:ops@example.com', secretName: 'avatar-pipeline-vapid', ssmPrefix: '/avatar-pipeline/vapid' },
  sqsQueueUrl: `https://sqs.${awsRegion}.amazonaws.com/${account}/avatar-pipeline-uploads`,
  cognitoUserPoolId: userPool,
  roles: Object.fromEntries(
    (['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push', 'vapid-init'] as const).map((w) => [w, role(w)]),
  ),
  devIssuer: false,
  gateway: {
    image: 'nginxinc/nginx-unprivileged:1.29-alpine',
    replicas: 2,
    ingress: {
      className: 'alb',
      host: 'avatars.example.com',
      annotations: {
        'alb.ingress.kubernetes.io/scheme': 'internet-facing',
        'alb.ingress.kubernetes.io/target-type': 'ip',
        'alb.ingress.kubernetes.io/listen-ports': '[{"HTTPS":443}]',
        'alb.ingress.kubernetes.io/certificate-arn': `arn:aws:acm:${awsRegion}:${account}:certificate/replace-me`,
        'alb.ingress.kubernetes.io/healthcheck-path': '/healthz',
      },
    },
  },
  monitoring,
};

export const environments: Readonly<Record<EnvironmentName, EnvironmentConfig>> = { kind, eks };

/** In-cluster URL of a Knative Service (its cluster-local address). */
export function serviceUrl(config: EnvironmentConfig, service: string): string {
  return `http://${service}.${config.namespace}.svc.cluster.local`;
}
