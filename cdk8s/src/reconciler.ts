/**
 * The reconciler (reconciler.enabled): a CronJob running profile's image once per schedule
 * (`node services/profile/dist/reconcile-main.js`), which ends every upload that waited too long
 * (pending past its ticket plus reconciler.pendingTimeoutSeconds: `expired`; processing longer than
 * reconciler.processingTimeoutSeconds: `failed`, reason `timeout`), tells the player through the
 * broker, and deletes objects under uploads/ that nothing will handle.
 *
 * - Runs never overlap (concurrencyPolicy Forbid); a run that fails is not retried in place
 *   (backoffLimit 0): the next scheduled run takes over whatever is left, and a run is cut after
 *   activeDeadlineSeconds. Its result is its exit status and one JSON summary line in its log (no
 *   Pushgateway: a Job's own /metrics would vanish with its pod).
 * - K_SINK and the broker's OIDC token come from a SinkBinding whose subject is the Jobs the
 *   CronJob creates, selected by the labels of its jobTemplate (Knative's pattern for CronJobs).
 * - Its own ServiceAccount (IRSA role `serviceAccounts.reconciler`), no API token, the restricted
 *   security context of every workload, the shared configuration (table, bucket, region, the
 *   stand-ins on kind).
 */
import { ApiObject } from 'cdk8s';
import type { Construct } from 'constructs';
import { BROKER_NAME, labels, restrictedSecurityContext, SHARED_CONFIG, STAND_IN_CREDENTIALS } from './common.js';
import { Conditional, type ConditionalProps } from './helm.js';
import { BROKER, SinkBinding } from './knative.js';
import { reconcilerDeadlinesEnv, sinkTokenEnv } from './services.js';
import { builtImage, settings } from './values.js';

export const RECONCILER = 'reconciler';
/** The labels of the CronJob's Jobs and pods: the SinkBinding selects the Jobs by them, the NetworkPolicies the pods. */
export const reconcilerLabels = () => labels(RECONCILER, 'maintenance');
/** A run that takes longer is cut: the next one carries on. */
const ACTIVE_DEADLINE_SECONDS = 600;

/** The reconciler's switch (reconciler.enabled); its schedule and deadlines are values (reconciler.*). */
export type ReconcilerProps = ConditionalProps;

/** The CronJob and the SinkBinding that gives its Jobs K_SINK. */
export class Reconciler extends Conditional {
  constructor(scope: Construct, id: string, props: ReconcilerProps) {
    super(scope, id, props.when);
    const podLabels = reconcilerLabels();
    new ApiObject(this, 'reconciler-cronjob', {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: RECONCILER, labels: podLabels },
      spec: {
        schedule: settings.reconciler.schedule,
        concurrencyPolicy: 'Forbid',
        // A run missed by more than this (the controller was down) is skipped, not made up in a burst.
        startingDeadlineSeconds: 300,
        successfulJobsHistoryLimit: 1,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          metadata: { labels: podLabels },
          spec: {
            backoffLimit: 0,
            activeDeadlineSeconds: ACTIVE_DEADLINE_SECONDS,
            ttlSecondsAfterFinished: 3600,
            template: {
              metadata: { labels: podLabels },
              spec: {
                serviceAccountName: RECONCILER,
                automountServiceAccountToken: false,
                restartPolicy: 'Never',
                enableServiceLinks: false,
                securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
                containers: [
                  {
                    name: RECONCILER,
                    image: builtImage('profile'),
                    imagePullPolicy: settings.imagePullPolicy,
                    command: ['node', 'services/profile/dist/reconcile-main.js'],
                    // Optional: only the stand-ins have credentials (EKS uses IRSA).
                    envFrom: [{ configMapRef: { name: SHARED_CONFIG } }, { secretRef: { name: STAND_IN_CREDENTIALS, optional: true } }],
                    env: [
                      ...reconcilerDeadlinesEnv(),
                      // The token the SinkBinding mounts, where profile (whose job this is) reads it.
                      ...sinkTokenEnv('profile'),
                    ],
                    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
                    securityContext: restrictedSecurityContext(),
                    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                  },
                ],
                volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }],
              },
            },
          },
        },
      },
    });
    new SinkBinding(this, 'sink-reconciler', {
      metadata: { name: `${RECONCILER}-to-broker`, labels: podLabels },
      spec: {
        subject: { apiVersion: 'batch/v1', kind: 'Job', selector: { matchLabels: podLabels } },
        sink: { ref: { ...BROKER, name: BROKER_NAME } },
      },
    });
  }
}
