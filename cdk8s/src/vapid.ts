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
import { Construct } from 'constructs';
import { labels, restrictedContainerSecurity, restrictedPodSecurity } from './common.js';
import { Conditional, nameFromSpec, setField } from './helm.js';
import { asBoolean, vapidEnv } from './services.js';
import { builtImage, settings } from './values.js';

export const VAPID_INIT = 'vapid-init';

/** Who takes part: the chart's ServiceAccounts, referred to by name in the release namespace (RoleBindings name the namespace of their subjects). */
export interface VapidInitProps {
  /** The Job's own ServiceAccount (`vapid-init`): may get and create the Secret when the keys live in one. */
  readonly account: kplus.IServiceAccount;
  /** The services that read the keys (service profiles' `readsVapidSecret`): may get the Secret. */
  readonly readers: readonly kplus.IServiceAccount[];
}

/** The init Job, and with vapid.store k8s-secret the Roles that let it and the readers at the Secret. */
export class VapidInit extends Construct {
  constructor(scope: Construct, id: string, props: VapidInitProps) {
    super(scope, id);
    const inSecret = new Conditional(this, 'vapid-secret-access', settings.vapid.inSecret);
    const keys = kplus.Secret.fromSecretName(inSecret, 'vapid-secret', settings.vapid.secretName);
    const init = new kplus.Role(inSecret, 'vapid-init-role', { metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'rbac') } });
    init.allowGet(keys);
    init.allowCreate(kplus.ApiResource.SECRETS);
    init.bind(props.account);
    const read = new kplus.Role(inSecret, 'vapid-reader-role', { metadata: { name: 'vapid-reader', labels: labels('vapid-reader', 'rbac') } });
    read.allowGet(keys);
    read.bind(...props.readers);

    const env = Object.fromEntries(
      [...vapidEnv(), { name: 'AWS_REGION', value: settings.region }, { name: 'LOG_LEVEL', value: settings.logLevel }].map((e) => [
        e.name,
        kplus.EnvValue.fromValue(e.value ?? ''),
      ]),
    );
    const tmp = kplus.Volume.fromEmptyDir(this, 'vapid-init-tmp', 'tmp', { sizeLimit: Size.mebibytes(16) });
    // `Default`, the construct's main resource: constructs leave that id out of a path's address, so
    // the Job's pod label (cdk8s-plus's address label), and with it its name, stay as they were.
    const job = new kplus.Job(this, 'Default', {
      metadata: { name: VAPID_INIT, labels: labels(VAPID_INIT, 'setup') },
      podMetadata: { labels: labels(VAPID_INIT, 'setup') },
      serviceAccount: props.account,
      automountServiceAccountToken: false,
      backoffLimit: 6,
      ttlAfterFinished: Duration.hours(1),
      securityContext: restrictedPodSecurity(),
      containers: [
        {
          name: VAPID_INIT,
          image: builtImage('push'),
          command: ['node', 'packages/webpush/dist/init.js'],
          envVariables: env,
          securityContext: restrictedContainerSecurity(),
          resources: {
            cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(500) },
            memory: { request: Size.mebibytes(64), limit: Size.mebibytes(256) },
          },
          volumeMounts: [{ path: '/tmp', volume: tmp }],
        },
      ],
    });
    setField(ApiObject.of(job), '/spec/template/spec/automountServiceAccountToken', asBoolean(settings.vapid.inSecret));
    setField(ApiObject.of(job), '/spec/template/spec/containers/0/imagePullPolicy', settings.imagePullPolicy);
    // A Job's pod template is immutable: a new image or setting is a new Job (init only creates absent keys).
    nameFromSpec(ApiObject.of(job), VAPID_INIT);
  }
}
