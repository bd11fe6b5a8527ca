/**
 * Both charts against a real kube-apiserver (envtest style: etcd and kube-apiserver built from the
 * Go module proxy, no nodes), with the CRDs of the Knative release the README installs and the
 * Prometheus Operator's: every object `helm template` renders is server-side applied with strict
 * field validation, and RBAC is proven with SubjectAccessReviews rather than read from YAML.
 * The first run builds the binaries (minutes); later runs start the control plane in seconds.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { environmentNames, environments, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { eventConsumers } from '@avatar-pipeline/kit';
import { Cluster, yamlFiles } from './support/cluster.js';
import { startControlPlane, type ControlPlane } from './support/control-plane.js';
import { goModuleDir, goTool, KNATIVE_MODULE_VERSION, PROMETHEUS_OPERATOR_VERSION } from './support/go-tools.js';
import { helmTemplate } from './support/helm.js';
import { clone, type K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const START_TIMEOUT_MS = 3 * 60_000;

let crdFiles: string[];

beforeAll(async () => {
  await Promise.all([goTool('kube-apiserver'), goTool('etcd'), goTool('helm')]);
  const [serving, eventing, prometheusOperator] = await Promise.all([
    goModuleDir('knative.dev/serving', KNATIVE_MODULE_VERSION),
    goModuleDir('knative.dev/eventing', KNATIVE_MODULE_VERSION),
    goModuleDir('github.com/prometheus-operator/prometheus-operator', PROMETHEUS_OPERATOR_VERSION),
  ]);
  crdFiles = [
    // What serving-crds.yaml and eventing-crds.yaml of the release contain.
    ...yamlFiles(join(serving, 'config/core/300-resources')),
    ...yamlFiles(join(eventing, 'config/core/resources')),
    ...yamlFiles(join(prometheusOperator, 'example/prometheus-operator-crd'), (f) => /podmonitors|prometheusrules|servicemonitors/.test(f)),
  ];
}, BUILD_TIMEOUT_MS);

/** A fresh control plane per environment, with the CRDs installed, and that environment's chart rendered. */
function onFreshApiServer(environment: EnvironmentName): { cluster: () => Cluster; objects: () => K8sObject[] } {
  let controlPlane: ControlPlane | undefined;
  let cluster: Cluster | undefined;
  let objects: K8sObject[] = [];
  beforeAll(async () => {
    controlPlane = await startControlPlane();
    cluster = new Cluster(controlPlane);
    await cluster.discover();
    await cluster.installCrds(crdFiles);
    objects = await helmTemplate(environment, environments[environment].namespace);
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await controlPlane?.stop();
  });
  return { cluster: () => cluster!, objects: () => objects };
}

describe.each(environmentNames.map((env) => [env]))('the %s chart on a real API server', (environment) => {
  const { cluster, objects } = onFreshApiServer(environment);
  const namespace = environments[environment].namespace;

  it('has every object accepted by server-side apply with strict field validation, with no warnings', async () => {
    expect(objects().length).toBeGreaterThan(25);
    const result = await cluster().applyAll(objects());
    expect(result.refused).toEqual([]);
    // Pod Security (the namespace warns at `restricted`) and deprecations come back as warnings.
    expect(result.warnings).toEqual([]);
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
    expect(await vapidSecretProblems(cluster(), environment, objects(), namespace)).toEqual([]);
  });

  // Event consumers fetch the keys that verify Knative's delivery tokens from the API server with
  // their own token: Kubernetes' default system:service-account-issuer-discovery binding allows it.
  it.runIf(environments[environment].eventsOidc.fromKubernetesApi)('lets every event consumer read the service-account issuer keys', async () => {
    const path = new URL(environments[environment].eventsOidc.jwksUrl).pathname;
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
    expect(await vapidSecretProblems(cluster(), environment, rbac, ns)).toEqual(
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
async function vapidSecretProblems(cluster: Cluster, environment: EnvironmentName, objects: readonly K8sObject[], ns: string): Promise<string[]> {
  const { vapid } = environments[environment];
  const inSecret = vapid.store === 'k8s-secret';
  const secret = vapid.secretName;
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
