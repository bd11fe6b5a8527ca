/**
 * The VAPID key pair is created once, before push and subscribe need it, by a Job running the
 * vapid package's init command (create if absent; safe to re-run). It uses the push image,
 * whose production dependencies already include the vapid package.
 * - kind: the keys live in a Secret. The Job may get and create Secrets: `get` is limited to that
 *   one Secret by resourceNames, but Kubernetes RBAC cannot limit `create` by name (the name is
 *   not known when create is authorized), so the Job can create any Secret in the namespace; it
 *   runs once and its token is only mounted in its own pod. push and subscribe may only get it.
 * - eks: the keys live in SSM Parameter Store; the Job's IAM role (IRSA) may read and write only
 *   the /avatar-pipeline/vapid/* parameters (see the README's policies).
 */
import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { builtImage, labels, restrictedContainerSecurity, restrictedPodSecurity } from './common.js';
import type { EnvironmentConfig } from './config.js';
import { vapidEnv } from './services.js';

export const VAPID_INIT = 'vapid-init';

export function createVapidInit(scope: Construct, config: EnvironmentConfig, serviceAccount: kplus.IServiceAccount, readers: readonly kplus.IServiceAccount[]): void {
  if (config.vapid.store === 'k8s-secret') {
    const keys = kplus.Secret.fromSecretName(scope, 'vapid-secret', config.vapid.secretName);
    const init = new kplus.Role(scope, 'vapid-init-role', { metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'rbac') } });
    init.allowGet(keys);
    init.allowCreate(kplus.ApiResource.SECRETS);
    init.bind(serviceAccount);
    const read = new kplus.Role(scope, 'vapid-reader-role', { metadata: { name: 'vapid-reader', labels: labels('vapid-reader', 'rbac') } });
    read.allowGet(keys);
    read.bind(...readers);
  }
  const env = Object.fromEntries(
    [...vapidEnv(config), { name: 'AWS_REGION', value: config.region }, { name: 'LOG_LEVEL', value: config.logLevel }].map((e) => [
      e.name,
      kplus.EnvValue.fromValue(e.value ?? ''),
    ]),
  );
  new kplus.Job(scope, 'vapid-init', {
    metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'setup') },
    podMetadata: { labels: labels(VAPID_INIT, 'setup') },
    serviceAccount,
    automountServiceAccountToken: config.vapid.store === 'k8s-secret',
    backoffLimit: 6,
    ttlAfterFinished: Duration.hours(1),
    securityContext: restrictedPodSecurity(),
    containers: [
      {
        name: VAPID_INIT,
        image: builtImage(config, 'push'),
        // Built images are loaded into kind, not pulled.
        imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
        command: ['node', 'services/vapid/dist/init.js'],
        envVariables: env,
        securityContext: restrictedContainerSecurity(),
        resources: {
          cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(500) },
          memory: { request: Size.mebibytes(64), limit: Size.mebibytes(256) },
        },
        volumeMounts: [{ path: '/tmp', volume: kplus.Volume.fromEmptyDir(scope, 'vapid-init-tmp', 'tmp', { sizeLimit: Size.mebibytes(16) }) }],
      },
    ],
  });
}
