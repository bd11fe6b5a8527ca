/**
 * Optional (standIns.enabled, kind): real servers standing in for AWS, each with a volume, and a
 * Job that prepares them.
 * - MinIO (S3): its webhook target posts bucket notifications to s3-source, with a queue
 *   directory on the volume so notifications survive MinIO restarts and are retried while
 *   s3-source is unreachable or cold.
 * - DynamoDB Local (amazon/dynamodb-local): the single table, on a volume.
 * - The setup Job (AWS CLI against both endpoints, idempotent, retried until the servers answer):
 *   creates the bucket, subscribes the webhook target to object-created events under uploads/
 *   (the S3 API call `mc event add` makes), lets anyone read the derived avatars (the CDN
 *   stand-in), and creates the table with its TTL attribute and the reconciler's `open-uploads` index
 *   (added to a table from before it).
 */
import { ApiObject, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { AVATAR_PREFIX } from '@avatar-pipeline/kit/events';
import { TTL_ATTRIBUTE, openUploadsIndex, tableAttributeDefinitions } from '@avatar-pipeline/kit/table';
import { UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';
import { labels, restrictedContainerSecurity, restrictedPodSecurity, STAND_IN_CREDENTIALS } from './common.js';
import { MINIO_SERVICE } from './gateway.js';
import { Conditional, nameFromSpec, type ConditionalProps } from './helm.js';
import { serviceUrl, settings } from './values.js';

export const DYNAMODB_SERVICE = 'dynamodb';
/** MinIO's identifier of the webhook target: its ARN is arn:minio:sqs::S3SOURCE:webhook. */
const WEBHOOK_TARGET = 'S3SOURCE';

const tmpVolume = (scope: Construct, id: string) => kplus.Volume.fromEmptyDir(scope, id, 'tmp', { sizeLimit: Size.mebibytes(64) });

/** A ReadWriteOnce claim on the default storage class (kind: local-path) of `size` (a quantity). */
function persistentClaim(scope: Construct, name: string, claimLabels: Record<string, string>, size: string): kplus.IPersistentVolumeClaim {
  // A plain object: cdk8s-plus drops a storage request that is not one of its own Sizes.
  new ApiObject(scope, name, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, labels: claimLabels },
    spec: { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', resources: { requests: { storage: size } } },
  });
  return kplus.PersistentVolumeClaim.fromClaimName(scope, `${name}-ref`, name);
}

function credentialEnv(secret: kplus.ISecret, idName: string, keyName: string): Record<string, kplus.EnvValue> {
  return {
    [idName]: kplus.EnvValue.fromSecretValue({ secret, key: 'AWS_ACCESS_KEY_ID' }),
    [keyName]: kplus.EnvValue.fromSecretValue({ secret, key: 'AWS_SECRET_ACCESS_KEY' }),
  };
}

export interface StandInsProps extends ConditionalProps {
  /**
   * The Secret holding s3-source's webhook token, which MinIO sends with its notifications: created
   * with s3-source's webhook mode, absent in SQS mode (where MinIO sends nothing).
   */
  readonly webhookTokenSecret: string;
}

/** MinIO, DynamoDB Local, the credentials both take, and the setup Job (images, storage and credentials are values: standIns.*). */
export class StandIns extends Conditional {
  constructor(scope: Construct, id: string, props: StandInsProps) {
    super(scope, id, props.when);
    const standIns = settings.standIns;
    new kplus.Secret(this, 'stand-in-credentials', {
      metadata: { name: STAND_IN_CREDENTIALS, labels: labels('stand-ins', 'credentials') },
      stringData: { AWS_ACCESS_KEY_ID: standIns.accessKeyId, AWS_SECRET_ACCESS_KEY: standIns.secretAccessKey },
    });
    // Referred to by name: cdk8s-plus classes do not satisfy their own interfaces under exactOptionalPropertyTypes.
    const credentials = kplus.Secret.fromSecretName(this, 'stand-in-credentials-ref', STAND_IN_CREDENTIALS);
    const webhook = kplus.Secret.fromSecretName(this, 'webhook-token-ref', props.webhookTokenSecret);
    createMinio(this, credentials, webhook);
    createDynamo(this);
    createSetupJob(this, credentials);
  }
}

function createMinio(scope: Construct, credentials: kplus.ISecret, webhook: kplus.ISecret): void {
  const claim = persistentClaim(scope, 'minio-data', labels(MINIO_SERVICE, 'storage'), settings.standIns.minioStorage);
  const volume = kplus.Volume.fromPersistentVolumeClaim(scope, 'minio-volume', claim, { name: 'data' });
  const deployment = new kplus.Deployment(scope, 'minio', {
    metadata: { name: MINIO_SERVICE, labels: labels(MINIO_SERVICE, 'storage') },
    podMetadata: { labels: labels(MINIO_SERVICE, 'storage') },
    replicas: 1,
    // One writer of the volume at a time.
    strategy: kplus.DeploymentStrategy.recreate(),
    automountServiceAccountToken: false,
    securityContext: restrictedPodSecurity(),
    containers: [
      {
        name: 'minio',
        image: settings.standIns.minioImage,
        args: ['server', '/data', '--address', ':9000', '--console-address', ':9001'],
        ports: [
          { number: 9000, name: 's3' },
          { number: 9001, name: 'console' },
        ],
        envVariables: {
          ...credentialEnv(credentials, 'MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'),
          MINIO_REGION: kplus.EnvValue.fromValue(settings.region),
          [`MINIO_NOTIFY_WEBHOOK_ENABLE_${WEBHOOK_TARGET}`]: kplus.EnvValue.fromValue('on'),
          [`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${WEBHOOK_TARGET}`]: kplus.EnvValue.fromValue(`${serviceUrl('s3-source')}/webhook`),
          // Sent as `Authorization: Bearer <token>`.
          [`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${WEBHOOK_TARGET}`]: kplus.EnvValue.fromSecretValue({ secret: webhook, key: 'token' }, { optional: true }),
          // Undelivered notifications wait here (on the volume) and are retried.
          [`MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${WEBHOOK_TARGET}`]: kplus.EnvValue.fromValue('/events'),
          [`MINIO_NOTIFY_WEBHOOK_QUEUE_LIMIT_${WEBHOOK_TARGET}`]: kplus.EnvValue.fromValue('100000'),
          HOME: kplus.EnvValue.fromValue('/tmp'),
        },
        securityContext: restrictedContainerSecurity(),
        resources: {
          cpu: { request: kplus.Cpu.millis(100), limit: kplus.Cpu.millis(1000) },
          memory: { request: Size.mebibytes(256), limit: Size.mebibytes(1024) },
        },
        readiness: kplus.Probe.fromHttpGet('/minio/health/ready', { port: 9000, periodSeconds: Duration.seconds(5) }),
        liveness: kplus.Probe.fromHttpGet('/minio/health/live', { port: 9000, periodSeconds: Duration.seconds(20) }),
        volumeMounts: [
          { path: '/data', volume, subPath: 'data' },
          { path: '/events', volume, subPath: 'events' },
          { path: '/tmp', volume: tmpVolume(scope, 'minio-tmp') },
        ],
      },
    ],
  });
  deployment.exposeViaService({ name: MINIO_SERVICE, ports: [{ port: 9000, targetPort: 9000, name: 's3' }] });
}

function createDynamo(scope: Construct): void {
  // The image runs as its `dynamodblocal` user (uid 1000) from /home/dynamodblocal.
  const uid = 1000;
  const claim = persistentClaim(scope, 'dynamodb-data', labels(DYNAMODB_SERVICE, 'database'), settings.standIns.dynamodbStorage);
  const deployment = new kplus.Deployment(scope, 'dynamodb', {
    metadata: { name: DYNAMODB_SERVICE, labels: labels(DYNAMODB_SERVICE, 'database') },
    podMetadata: { labels: labels(DYNAMODB_SERVICE, 'database') },
    replicas: 1,
    strategy: kplus.DeploymentStrategy.recreate(),
    automountServiceAccountToken: false,
    securityContext: restrictedPodSecurity(uid),
    containers: [
      {
        name: 'dynamodb',
        image: settings.standIns.dynamodbImage,
        workingDir: '/home/dynamodblocal',
        command: ['java'],
        args: ['-jar', 'DynamoDBLocal.jar', '-sharedDb', '-dbPath', '/home/dynamodblocal/data'],
        ports: [{ number: 8000, name: 'dynamodb' }],
        envVariables: { JAVA_TOOL_OPTIONS: kplus.EnvValue.fromValue('-Xmx384m -Djava.io.tmpdir=/tmp') },
        securityContext: restrictedContainerSecurity(uid),
        resources: {
          cpu: { request: kplus.Cpu.millis(100), limit: kplus.Cpu.millis(1000) },
          memory: { request: Size.mebibytes(384), limit: Size.mebibytes(768) },
        },
        readiness: kplus.Probe.fromTcpSocket({ port: 8000, periodSeconds: Duration.seconds(5) }),
        liveness: kplus.Probe.fromTcpSocket({ port: 8000, periodSeconds: Duration.seconds(20) }),
        volumeMounts: [
          { path: '/home/dynamodblocal/data', volume: kplus.Volume.fromPersistentVolumeClaim(scope, 'dynamodb-volume', claim, { name: 'data' }) },
          { path: '/tmp', volume: tmpVolume(scope, 'dynamodb-tmp') },
        ],
      },
    ],
  });
  deployment.exposeViaService({ name: DYNAMODB_SERVICE, ports: [{ port: 8000, targetPort: 8000, name: 'dynamodb' }] });
}

/** The setup script: every step converges, so a retried or re-run Job is harmless. */
export function setupScript(): string {
  const { bucket, table } = settings;
  const notification = JSON.stringify({
    QueueConfigurations: [
      {
        Id: 'uploads-to-s3-source',
        QueueArn: `arn:minio:sqs::${WEBHOOK_TARGET}:webhook`,
        Events: ['s3:ObjectCreated:*'],
        Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: UPLOAD_PREFIX }] } },
      },
    ],
  });
  const policy = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/${AVATAR_PREFIX}*`] }],
  });
  const index = openUploadsIndex();
  const attributes = tableAttributeDefinitions().map((a) => `AttributeName=${a.AttributeName},AttributeType=${a.AttributeType}`).join(' ');
  const s3 = `aws --endpoint-url "$S3" s3api`;
  const ddb = `aws --endpoint-url "$DYNAMODB" dynamodb`;
  return [
    'set -eu',
    `until ${s3} list-buckets >/dev/null 2>&1; do echo "waiting for MinIO"; sleep 2; done`,
    `${s3} head-bucket --bucket ${bucket} 2>/dev/null || ${s3} create-bucket --bucket ${bucket}`,
    `${s3} put-bucket-notification-configuration --bucket ${bucket} --notification-configuration '${notification}'`,
    `${s3} put-bucket-policy --bucket ${bucket} --policy '${policy}'`,
    `until ${ddb} list-tables >/dev/null 2>&1; do echo "waiting for DynamoDB Local"; sleep 2; done`,
    `${ddb} describe-table --table-name ${table} >/dev/null 2>&1 || ${ddb} create-table --table-name ${table}` +
      ` --billing-mode PAY_PER_REQUEST --attribute-definitions ${attributes}` +
      ` --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE --global-secondary-indexes '${JSON.stringify([index])}'`,
    // A table created before the reconciler's index gets it (DynamoDB Local builds it from the items).
    `indexes="$(${ddb} describe-table --table-name ${table} --query 'Table.GlobalSecondaryIndexes[].IndexName' --output text)"`,
    `case "$indexes" in *${index.IndexName}*) ;; *) ${ddb} update-table --table-name ${table} --attribute-definitions ${attributes}` +
      ` --global-secondary-index-updates '${JSON.stringify([{ Create: index }])}' >/dev/null ;; esac`,
    `${ddb} update-time-to-live --table-name ${table} --time-to-live-specification Enabled=true,AttributeName=${TTL_ATTRIBUTE} >/dev/null 2>&1 || true`,
    'echo "stand-ins ready"',
  ].join('\n');
}

function createSetupJob(scope: Construct, credentials: kplus.ISecret): void {
  const job = new kplus.Job(scope, 'stand-ins-setup', {
    metadata: { name: 'stand-ins-setup', labels: labels('stand-ins-setup', 'setup') },
    podMetadata: { labels: labels('stand-ins-setup', 'setup') },
    backoffLimit: 20,
    ttlAfterFinished: Duration.hours(1),
    automountServiceAccountToken: false,
    securityContext: restrictedPodSecurity(),
    containers: [
      {
        name: 'setup',
        image: settings.standIns.awsCliImage,
        command: ['/bin/sh', '-c'],
        args: [setupScript()],
        envVariables: {
          ...credentialEnv(credentials, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'),
          AWS_REGION: kplus.EnvValue.fromValue(settings.region),
          AWS_PAGER: kplus.EnvValue.fromValue(''),
          HOME: kplus.EnvValue.fromValue('/tmp'),
          S3: kplus.EnvValue.fromValue(`${serviceUrl(MINIO_SERVICE)}:9000`),
          DYNAMODB: kplus.EnvValue.fromValue(`${serviceUrl(DYNAMODB_SERVICE)}:8000`),
        },
        securityContext: restrictedContainerSecurity(),
        resources: {
          cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(500) },
          memory: { request: Size.mebibytes(64), limit: Size.mebibytes(256) },
        },
        volumeMounts: [{ path: '/tmp', volume: tmpVolume(scope, 'setup-tmp') }],
      },
    ],
  });
  // A Job's pod template is immutable: a changed spec is a new Job (the steps converge, so re-running is harmless).
  nameFromSpec(ApiObject.of(job), 'stand-ins-setup');
}
