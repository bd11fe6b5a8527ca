/**
 * The chart with each environment's values against a real kube-apiserver (envtest style: etcd and
 * kube-apiserver built from the Go module proxy, no nodes), with the CRDs of the Knative release
 * docs/deploy.md installs, the Prometheus Operator's and KEDA's: every object `helm template` renders is
 * server-side applied with strict field validation, RBAC is proven with SubjectAccessReviews rather
 * than read from YAML, and the real `helm install` and `helm upgrade` (with a new image) succeed.
 * The first run builds the binaries (minutes); later runs start the control plane in seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { environmentNames, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { eventConsumers } from '@avatar-pipeline/kit/topology';
import { Cluster } from './support/cluster.js';
import { chartCrdFiles, startControlPlane, type ControlPlane } from './support/control-plane.js';
import { goTool } from './support/go-tools.js';
import { helm, helmTemplate, rendered, RELEASE, valuesArgs, type Rendered } from './support/helm.js';
import { chartDir, clone, valueAt, type K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const START_TIMEOUT_MS = 3 * 60_000;

let crdFiles: string[];

beforeAll(async () => {
  await Promise.all([goTool('kube-apiserver'), goTool('etcd'), goTool('helm')]);
  crdFiles = await chartCrdFiles();
}, BUILD_TIMEOUT_MS);

/** The namespace as docs/deploy.md has it created: Pod Security warns (as warnings on apply) at `restricted`. */
const namespaceObject = (name: string): K8sObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels: { 'pod-security.kubernetes.io/warn': 'restricted', 'pod-security.kubernetes.io/audit': 'restricted' } },
});

/** A fresh control plane per environment, with the CRDs installed, and that environment's chart rendered. */
function onFreshApiServer(environment: EnvironmentName): { controlPlane: () => ControlPlane; cluster: () => Cluster; env: () => Rendered } {
  let controlPlane: ControlPlane | undefined;
  let cluster: Cluster | undefined;
  let env: Rendered | undefined;
  beforeAll(async () => {
    controlPlane = await startControlPlane();
    cluster = new Cluster(controlPlane);
    await cluster.discover();
    await cluster.installCrds(crdFiles);
    env = await rendered(environment);
    const created = await cluster.applyAll([namespaceObject(env.namespace)]);
    expect(created.refused).toEqual([]);
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await controlPlane?.stop();
  });
  return { controlPlane: () => controlPlane!, cluster: () => cluster!, env: () => env! };
}

describe.each(environmentNames.map((env) => [env]))('the %s chart on a real API server', (environment) => {
  const { controlPlane, cluster, env } = onFreshApiServer(environment);
  const objects = () => env().objects;
  const namespace = 'avatar-pipeline';

  it('has every object accepted by server-side apply with strict field validation, with no warnings', async () => {
    expect(objects().length).toBeGreaterThan(25);
    const result = await cluster().applyAll(objects());
    expect(result.refused).toEqual([]);
    // Pod Security (the namespace warns at `restricted`) and deprecations come back as warnings.
    expect(result.warnings).toEqual([]);
  });

  it.runIf(environment === 'eks')('accepts the KEDA scaler of the SQS poller (s3Source.keda.enabled)', async () => {
    const keda = (await helmTemplate(environment, { extra: ['--set', 's3Source.keda.enabled=true'] })).filter((o) => o.apiVersion === 'keda.sh/v1alpha1' || o.kind === 'Deployment');
    expect(keda.filter((o) => o.apiVersion === 'keda.sh/v1alpha1').map((o) => o.kind).sort()).toEqual(['ScaledObject', 'TriggerAuthentication']);
    const result = await cluster().applyAll(keda);
    expect(result.refused).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  // kubectl apply (skaffold run) of a changed Job is refused: its pod template is immutable. The
  // chart names Jobs after their spec, so a new image is a new Job.
  it('applies again after a new image tag (skaffold run twice), and again with the first', async () => {
    for (const tag of ['second', 'third', 'second']) {
      const again = await helmTemplate(environment, { extra: ['--set', `image.tag=${tag}`] });
      const result = await cluster().applyAll(again);
      expect(result.refused, tag).toEqual([]);
    }
  });

  it('installs with the real helm, and upgrades to a new image', async () => {
    const ns = `helm-${environment}`;
    expect((await cluster().applyAll([namespaceObject(ns)])).refused).toEqual([]);
    const run = (verb: string, ...extra: string[]) =>
      helm([verb, RELEASE, chartDir, '--namespace', ns, ...valuesArgs(environment), '--kubeconfig', controlPlane().kubeconfig, ...extra]);
    const install = await run('install');
    expect(install.output).toMatch(/STATUS: deployed/);
    expect(install.code).toBe(0);
    const upgrade = await run('upgrade', '--set', 'image.tag=next');
    expect(upgrade.output).toMatch(/STATUS: deployed/);
    expect(upgrade.code).toBe(0);
    const list = await cluster().api.request('GET', `/apis/batch/v1/namespaces/${ns}/jobs`);
    // helm deleted the Job of the first revision, which the second no longer names.
    expect((list.body.items as K8sObject[]).map((j) => j.metadata.name.replace(/-[0-9a-f]{10}$/, '')).sort()).toEqual(
      environment === 'kind' ? ['stand-ins-setup', 'vapid-init'] : ['vapid-init'],
    );
  });

  it('stores the Knative and Prometheus Operator objects as custom resources', async () => {
    for (const [apiVersion, kind] of [
      ['serving.knative.dev/v1', 'Service'],
      ['eventing.knative.dev/v1', 'Trigger'],
      ['eventing.knative.dev/v1', 'Broker'],
      ['sources.knative.dev/v1', 'SinkBinding'],
      ['monitoring.coreos.com/v1', 'PodMonitor'],
      ['monitoring.coreos.com/v1', 'PrometheusRule'],
    ] as const) {
      const expected = objects().filter((o) => o.apiVersion === apiVersion && o.kind === kind).map((o) => o.metadata.name);
      expect(expected.length, `${kind} in the chart`).toBeGreaterThan(0);
      const list = await cluster().api.request('GET', cluster().path({ apiVersion, kind, metadata: { name: '', namespace } }, { withName: false }));
      expect((list.body.items as K8sObject[]).map((o) => o.metadata.name).sort(), kind).toEqual(expected.sort());
    }
  });

  it('lets exactly the accounts that handle the VAPID keys near Secrets', async () => {
    expect(await vapidSecretProblems(cluster(), env(), objects(), namespace)).toEqual([]);
  });

  // Event consumers fetch the keys that verify Knative's delivery tokens from the API server with
  // their own token: Kubernetes' default system:service-account-issuer-discovery binding allows it.
  it('lets every event consumer read the service-account issuer keys when they are the API server’s', async () => {
    if (valueAt(env().values, 'eventsOidc', 'fromKubernetesApi') !== true) return;
    const path = new URL(valueAt(env().values, 'eventsOidc', 'jwksUrl') as string).pathname;
    for (const name of eventConsumers) expect(await cluster().can({ namespace, name }, { verb: 'get', path }), name).toBe(true);
  });

  it.runIf(environment === 'kind')('catches RoleBindings whose subjects name the wrong namespace (the bug cdk8s once emitted)', async () => {
    const ns = 'rbac-broken';
    const rbac = objects()
      .filter((o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind))
      .map((o) => {
        const copy = clone(o) as K8sObject & { subjects?: { namespace?: string }[] };
        copy.metadata.namespace = ns;
        for (const subject of copy.subjects ?? []) subject.namespace = 'default';
        return copy;
      });
    const created = await cluster().applyAll([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, ...rbac]);
    expect(created.refused).toEqual([]);
    expect(await vapidSecretProblems(cluster(), env(), rbac, ns)).toEqual(
      expect.arrayContaining(['vapid-init cannot create secrets', 'push cannot get secrets/avatar-pipeline-vapid', 'default/vapid-init can get secrets/avatar-pipeline-vapid in rbac-broken']),
    );
  });

  // The Trigger CRD preserves unknown fields under spec (Knative's webhook refuses them: knative.test.ts).
  it.runIf(environment === 'kind').each([
    ['an unknown field in a Knative Service', 'serving.knative.dev/v1', 'Service', (o: any): void => void (o.spec.template.spec.containers[0].imagePullPolicyy = 'Always'), /\.spec\.template\.spec\.containers\[0\]\.imagePullPolicyy: field not declared in schema/],
    ['an unknown field in a Deployment', 'apps/v1', 'Deployment', (o: any): void => void (o.spec.template.spec.containers[0].imagePullPolicyy = 'Always'), /imagePullPolicyy: field not declared in schema/],
    ['a bad enum value in a Deployment', 'apps/v1', 'Deployment', (o: any): void => void (o.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes'), /Unsupported value: "Sometimes"/],
    ['a wrong type in a Knative Service', 'serving.knative.dev/v1', 'Service', (o: any): void => void (o.spec.template.spec.containerConcurrency = 'two'), /containerConcurrency/],
    ['an unknown field in a PodMonitor', 'monitoring.coreos.com/v1', 'PodMonitor', (o: any): void => void (o.spec.podMetricsEndpoints[0].intervall = '30s'), /\.spec\.podMetricsEndpoints\[0\]\.intervall: field not declared in schema/],
    ['a RoleBinding subject without a kind', 'rbac.authorization.k8s.io/v1', 'RoleBinding', (o: any): void => void delete o.subjects[0].kind, /kind/],
  ] as const)('refuses %s', async (_label, apiVersion, kind, edit, message) => {
    const original = objects().find((o) => o.apiVersion === apiVersion && o.kind === kind);
    expect(original, `${kind} in the chart`).toBeDefined();
    const copy = clone(original!);
    edit(copy);
    const res = await cluster().apply(copy, { dryRun: true });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.body.message).toMatch(message);
  });
});

/**
 * What RBAC must allow and refuse around the VAPID key Secret, as the API server's authorizer
 * answers it. With keys in a Secret (kind): vapid-init may create it and read it, push and
 * subscribe may only read it, and no other account (nor the namespace's `default`, nor accounts of
 * the same names in `default`) may read Secrets. With keys in SSM (eks): no account may.
 */
async function vapidSecretProblems(cluster: Cluster, env: Rendered, objects: readonly K8sObject[], ns: string): Promise<string[]> {
  const inSecret = valueAt(env.values, 'vapid', 'store') === 'k8s-secret';
  const secret = valueAt(env.values, 'vapid', 'secretName') as string;
  const problems: string[] = [];
  const expectAnswer = async (account: string, verb: string, allowed: boolean, name?: string, accountNamespace = ns) => {
    const answer = await cluster.can({ namespace: accountNamespace, name: account }, { verb, resource: 'secrets', namespace: ns, ...(name ? { name } : {}) });
    const who = accountNamespace === ns ? account : `${accountNamespace}/${account}`;
    if (answer !== allowed) problems.push(`${who} ${allowed ? 'cannot' : 'can'} ${verb} secrets${name ? `/${name}` : ''}${accountNamespace === ns ? '' : ` in ${ns}`}`);
  };
  await expectAnswer('vapid-init', 'create', inSecret);
  for (const account of ['vapid-init', 'push', 'subscribe']) await expectAnswer(account, 'get', inSecret, secret);
  for (const reader of ['push', 'subscribe']) {
    for (const verb of ['update', 'patch', 'delete']) await expectAnswer(reader, verb, false, secret);
    for (const verb of ['list', 'watch', 'create']) await expectAnswer(reader, verb, false);
  }
  const accounts = objects.filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata.name);
  for (const account of [...accounts.filter((a) => !['vapid-init', 'push', 'subscribe'].includes(a)), 'default']) {
    await expectAnswer(account, 'get', false, secret);
    await expectAnswer(account, 'list', false);
  }
  for (const account of ['vapid-init', 'push', 'subscribe']) await expectAnswer(account, 'get', false, secret, 'default');
  return problems;
}
