/**
 * s3-source as an SQS poller (s3Source.mode: sqs): a Deployment, not a Knative Service. A poller
 * gets no requests, so Knative could neither wake it nor scale it; here it runs one replica, or
 * KEDA scales it on the queue's depth (s3Source.keda.enabled, KEDA installed), reading the queue
 * attributes with the poller's own IAM role (IRSA, podIdentity provider aws).
 * The webhook mode (MinIO on kind) stays a Knative Service (pipeline.ts).
 */
import { ApiObject } from 'cdk8s';
import type { Construct } from 'constructs';
import { labels, restrictedSecurityContext, SHARED_CONFIG } from './common.js';
import { asText, Conditional, optionalField, type ConditionalProps } from './helm.js';
import { USER_PORT } from './monitoring.js';
import { serviceProfiles, sinkTokenEnv } from './services.js';
import { builtImage, settings } from './values.js';

const NAME = 's3-source';
const GRACE_SECONDS = 60;

export interface S3SourcePollerProps extends ConditionalProps {
  /** The shared ConfigMap's hash (a pod annotation), so that a changed configuration rolls the poller too. */
  readonly configHash: string;
}

/** The poller Deployment, and with KEDA its TriggerAuthentication and ScaledObject (pipeline.ts binds it to the broker). */
export class S3SourcePoller extends Conditional {
  constructor(scope: Construct, id: string, props: S3SourcePollerProps) {
    super(scope, id, props.when);
    const podLabels = labels(NAME, 'service');
    const deployment = new ApiObject(this, 's3-source-deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAME, labels: podLabels },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/component': 'service' } },
        // In-flight messages are redelivered by SQS after their visibility timeout: no surge needed.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
        template: {
          metadata: { labels: podLabels, annotations: { 'avatar-pipeline/config-hash': props.configHash } },
          spec: {
            serviceAccountName: NAME,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: GRACE_SECONDS,
            securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: NAME,
                image: builtImage(NAME),
                imagePullPolicy: settings.imagePullPolicy,
                ports: [{ name: USER_PORT, containerPort: 8080 }],
                envFrom: [{ configMapRef: { name: SHARED_CONFIG } }],
                env: [
                  { name: 'SQS_QUEUE_URL', value: settings.sqsQueueUrl },
                  // Drains in-flight messages on SIGTERM within terminationGracePeriodSeconds.
                  { name: 'SHUTDOWN_GRACE_SECONDS', value: String(GRACE_SECONDS - 10) },
                  ...sinkTokenEnv(NAME),
                ],
                resources: settings.service(NAME).resources,
                readinessProbe: { httpGet: { path: '/readyz', port: USER_PORT }, periodSeconds: 10 },
                livenessProbe: {
                  httpGet: { path: '/healthz', port: USER_PORT },
                  initialDelaySeconds: serviceProfiles[NAME].livenessDelaySeconds,
                  periodSeconds: 10,
                  timeoutSeconds: 3,
                },
                securityContext: restrictedSecurityContext(),
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
              },
            ],
            volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }],
          },
        },
      },
    });
    // With KEDA, its HPA owns the replica count: the chart must not reset it on every upgrade.
    optionalField(deployment, '/spec/replicas', settings.s3Source.keda.not(), 1);

    const keda = new Conditional(this, 'keda', settings.s3Source.keda);
    new ApiObject(keda, 's3-source-trigger-auth', {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'TriggerAuthentication',
      metadata: { name: NAME, labels: labels(NAME, 'autoscaling') },
      // The KEDA operator assumes the poller's own role (the workload identity of the scaled pods).
      spec: { podIdentity: { provider: 'aws', identityOwner: 'workload' } },
    });
    new ApiObject(keda, 's3-source-scaler', {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: NAME, labels: labels(NAME, 'autoscaling') },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: NAME },
        minReplicaCount: settings.s3Source.kedaMin,
        maxReplicaCount: settings.s3Source.kedaMax,
        triggers: [
          {
            type: 'aws-sqs-queue',
            authenticationRef: { name: NAME },
            metadata: { queueURL: settings.sqsQueueUrl, queueLength: asText(settings.s3Source.kedaQueueLength), awsRegion: settings.region },
          },
        ],
      },
    });
  }
}
