/**
 * The VAPID key pair is created once, before push and subscribe need it, by a Job running the
 * vapid package's init command (create if absent; safe to re-run). It uses the push image,
 * whose production dependencies already include the vapid package.
 * - vapid.store k8s-secret (kind): the keys live in a Secret. The Job may get and create Secrets: `get` is limited to that
 *   one Secret by resourceNames, but Kubernetes RBAC cannot limit `create` by name (the name is
 *   not known when create is authorized), so the Job can create any Secret in the namespace; it
 *   runs once and its token is only mounted in its own pod. push and subscribe may only get it.
 * - vapid.store ssm (EKS): the keys live in SSM Parameter Store; the Job's IAM role (IRSA) may read and write only
 *   the /avatar-pipeline/vapid/* parameters (see the IAM table in docs/deploy.md).
 */
import { ApiObject, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { labels, restrictedContainerSecurity, restrictedPodSecurity } from './common.js';
import { Conditional, nameFromSpec, setField } from './helm.js';
import { asBoolean, vapidEnv } from './services.js';
import { builtImage, settings } from './values.js';

export const VAPID_INIT = 'vapid-init';

export function createVapidInit(scope: Construct): void {
  // By name, in the release namespace (RoleBindings name the namespace of their subjects).
  const account = (name: string) =>
    (scope.node.tryFindChild(`sa-${name}-ref`) as kplus.IServiceAccount | undefined) ??
    kplus.ServiceAccount.fromServiceAccountName(scope, `sa-${name}-ref`, name, { namespaceName: settings.namespace });
  const inSecret = new Conditional(scope, 'vapid-secret-access', settings.vapid.inSecret);
  const keys = kplus.Secret.fromSecretName(inSecret, 'vapid-secret', settings.vapid.secretName);
  const init = new kplus.Role(inSecret, 'vapid-init-role', { metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'rbac') } });
  init.allowGet(keys);
  init.allowCreate(kplus.ApiResource.SECRETS);
  init.bind(account(VAPID_INIT));
  const read = new kplus.Role(inSecret, 'vapid-reader-role', { metadata: { name: 'vapid-reader', labels: labels('vapid-reader', 'rbac') } });
  read.allowGet(keys);
  read.bind(account('push'), account('subscribe'));

  const env = Object.fromEntries(
    [...vapidEnv(), { name: 'AWS_REGION', value: settings.region }, { name: 'LOG_LEVEL', value: settings.logLevel }].map((e) => [
      e.name,
      kplus.EnvValue.fromValue(e.value ?? ''),
    ]),
  );
  const job = new kplus.Job(scope, 'vapid-init', {
    metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'setup') },
    podMetadata: { labels: labels(VAPID_INIT, 'setup') },
    serviceAccount: account(VAPID_INIT),
    automountServiceAccountToken: false,
    backoffLimit: 6,
    ttlAfterFinished: Duration.hours(1),
    securityContext: restrictedPodSecurity(),
    containers: [
      {
        name: VAPID_INIT,
        image: builtImage('push'),
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
  setField(ApiObject.of(job), '/spec/template/spec/automountServiceAccountToken', asBoolean(settings.vapid.inSecret));
  setField(ApiObject.of(job), '/spec/template/spec/containers/0/imagePullPolicy', settings.imagePullPolicy);
  // A Job's pod template is immutable: a new image or setting is a new Job (init only creates absent keys).
  nameFromSpec(ApiObject.of(job), VAPID_INIT);
}
