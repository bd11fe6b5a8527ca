/**
 * The NetworkPolicy definitions (cdk8s/src/network-policies.ts) against the invariants
 * (support/network-policies.ts), on small stand-in workloads shaped as the chart renders them:
 * the kind and EKS variants pass, and each deliberately broken copy is reported. The same
 * invariants then run on the chart as the real helm renders it with each environment's values
 * (options from its networkPolicy values), which must hold exactly the variant's policies and the
 * pods the stand-ins model. No API server.
 */
import { describe, expect, it } from 'vitest';
import {
  CLIENTS,
  networkPolicies,
  type NetworkPolicyCondition,
  type NetworkPolicyDef,
  type NetworkPolicySettings,
} from '../cdk8s/src/network-policies.js';
import type { EnvironmentName } from '@avatar-pipeline/cdk8s';
import { helmTemplate, renderedEnvironments } from './support/helm.js';
import { valueAt, type K8sObject } from './support/manifests.js';
import {
  coverageProblems,
  deadSelectorProblems,
  defaultDenyProblems,
  deniesEgress,
  knativeNamespaceProblems,
  matches,
  networkPoliciesOf,
  networkPolicyProblems,
  peerProblems,
  podTemplates,
  pushEgressProblems,
  reciprocityProblems,
  selectorProblems,
  type NetworkPolicyInvariantOptions,
  type NetworkPolicyObject,
} from './support/network-policies.js';

const NAMESPACE = 'avatar-pipeline';

const settings: NetworkPolicySettings = {
  namespaces: { knativeServing: 'knative-serving', knativeEventing: 'knative-eventing', ingress: 'kourier-system', dns: 'kube-system' },
  dnsPodLabels: { 'k8s-app': 'kube-dns' },
  prometheus: { namespace: 'monitoring', podLabels: { 'app.kubernetes.io/name': 'prometheus' } },
  kubeApiServer: { cidr: '172.18.0.2/32', port: 6443 },
  https: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.169.254/32'] },
  gatewayFrom: [],
  tracingCollector: {
    namespace: 'observability',
    podLabels: { 'app.kubernetes.io/name': 'opentelemetry-collector' },
    ports: [{ protocol: 'TCP', port: 4318 }],
  },
};

const options: NetworkPolicyInvariantOptions = {
  knativeNamespaces: { serving: 'knative-serving', eventing: 'knative-eventing', ingress: 'kourier-system' },
  kubeApi: settings.kubeApiServer,
};

// Workloads as the chart renders them (common.ts `labels`; Knative Services label only their template).
const labels = (name: string, component: string) => ({ 'app.kubernetes.io/name': name, 'app.kubernetes.io/component': component, 'app.kubernetes.io/part-of': 'avatar-pipeline' });
const meta = (name: string, component: string) => ({ name, namespace: NAMESPACE, labels: labels(name, component) });
const podSpec = (name: string) => ({ containers: [{ name, image: `example/${name}` }] });
const ksvc = (name: string): K8sObject => ({
  apiVersion: 'serving.knative.dev/v1',
  kind: 'Service',
  metadata: { ...meta(name, 'service'), labels: { ...labels(name, 'service'), 'networking.knative.dev/visibility': 'cluster-local' } },
  spec: { template: { metadata: { labels: labels(name, 'service') }, spec: podSpec(name) } },
});
const deployment = (name: string, component: string): K8sObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: meta(name, component),
  spec: { selector: { matchLabels: labels(name, component) }, template: { metadata: { labels: labels(name, component) }, spec: podSpec(name) } },
});
const job = (name: string): K8sObject => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: meta(name, 'setup'),
  spec: { template: { metadata: { labels: labels(name, 'setup') }, spec: podSpec(name) } },
});

const cronJob = (name: string): K8sObject => ({
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: meta(name, 'maintenance'),
  spec: { jobTemplate: { metadata: { labels: labels(name, 'maintenance') }, spec: { template: { metadata: { labels: labels(name, 'maintenance') }, spec: podSpec(name) } } } },
});

const knativeServices = ['presign', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push'].map(ksvc);
/** And objects that produce no pods, which the invariants must ignore. */
const others: K8sObject[] = [
  { apiVersion: 'v1', kind: 'Service', metadata: meta('gateway', 'gateway'), spec: { ports: [{ port: 8080 }] } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('avatar-pipeline-env', 'config'), data: {} },
];

interface Variant {
  when: readonly NetworkPolicyCondition[];
  workloads: K8sObject[];
  settings: NetworkPolicySettings;
}

const variants: Record<'kind' | 'eks', Variant> = {
  kind: {
    when: ['standIns', 'devIssuer', 's3SourceWebhook', 'kubeApi', 'reconciler'],
    workloads: [
      ...knativeServices,
      ksvc('s3-source'),
      deployment('gateway', 'gateway'),
      deployment('dev-issuer', 'identity'),
      deployment('minio', 'storage'),
      deployment('dynamodb', 'database'),
      job('stand-ins-setup'),
      job('vapid-init'),
      cronJob('reconciler'),
      ...others,
    ],
    settings,
  },
  eks: {
    when: ['s3SourcePoller', 'reconciler'],
    workloads: [...knativeServices, deployment('s3-source', 'service'), deployment('gateway', 'gateway'), job('vapid-init'), cronJob('reconciler'), ...others],
    // Behind an ALB in IP mode: only the load balancer's subnets reach the gateway.
    settings: { ...settings, gatewayFrom: [{ ipBlock: { cidr: '10.0.0.0/16' } }] },
  },
};

/** NetworkPolicy objects as the chart renders them: only the parts the variant has, through JSON. */
function render(defs: readonly NetworkPolicyDef[], when: readonly NetworkPolicyCondition[]): NetworkPolicyObject[] {
  return defs
    .filter((def) => def.when === undefined || when.includes(def.when))
    .map((def) => JSON.parse(JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: def.name, namespace: NAMESPACE }, spec: def.spec })));
}

function objectsOf(variant: Variant): K8sObject[] {
  return [...variant.workloads, ...render(networkPolicies(variant.settings), variant.when)];
}

const policy = (objects: K8sObject[], name: string): NetworkPolicyObject => {
  const found = networkPoliciesOf(objects).find((p) => p.metadata.name === name);
  if (!found) throw new Error(`no NetworkPolicy ${name}`);
  return found;
};
const without = (objects: K8sObject[], name: string) => objects.filter((o) => !(o.kind === 'NetworkPolicy' && o.metadata.name === name));
const extraPolicy = (name: string, spec: NetworkPolicyObject['spec']): NetworkPolicyObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace: NAMESPACE },
  spec,
});

describe('the NetworkPolicy definitions', () => {
  it('have unique names', () => {
    const names = networkPolicies(settings).map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('only place settings values: opaque Helm placeholders are never read, iterated or spread', () => {
    // Every leaf is a token that throws on any use but being stored (iteration, spreading, indexing, conversion).
    const tokens = new Map<object, string>();
    const token = (path: string): never => {
      const trap = () => {
        throw new Error(`settings value ${path} was used, not placed`);
      };
      const proxy = new Proxy({}, { get: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap, set: trap, deleteProperty: trap, defineProperty: trap, getPrototypeOf: trap });
      tokens.set(proxy, path);
      return proxy as never;
    };
    const opaque: NetworkPolicySettings = {
      namespaces: { knativeServing: token('ns.serving'), knativeEventing: token('ns.eventing'), ingress: token('ns.ingress'), dns: token('ns.dns') },
      dnsPodLabels: token('dnsPodLabels'),
      prometheus: { namespace: token('prometheus.namespace'), podLabels: token('prometheus.podLabels') },
      kubeApiServer: { cidr: token('kubeApi.cidr'), port: token('kubeApi.port') },
      https: { cidr: token('https.cidr'), except: token('https.except') },
      gatewayFrom: token('gatewayFrom'),
      tracingCollector: { namespace: token('tracing.namespace'), podLabels: token('tracing.podLabels'), ports: token('tracing.ports') },
    };
    const defs = networkPolicies(opaque);
    // Where each token landed (walking the result without touching a token).
    const placed = new Map<string, string[]>();
    const walk = (value: unknown, path: string): void => {
      if (value !== null && typeof value === 'object') {
        const name = tokens.get(value);
        if (name !== undefined) {
          placed.set(name, [...(placed.get(name) ?? []), path]);
          return;
        }
        for (const [key, child] of Object.entries(value)) walk(child, `${path}.${key}`);
      }
    };
    defs.forEach((def) => walk(def.spec, def.name));
    expect(new Set(placed.keys())).toEqual(new Set(tokens.values()));
    expect(placed.get('gatewayFrom')).toEqual(['gateway.ingress.0.from']);
    expect(placed.get('kubeApi.port')).toEqual(['kube-api-egress.egress.0.ports.0.port']);
    expect(placed.get('dnsPodLabels')).toEqual(['allow-dns.egress.0.to.0.podSelector.matchLabels']);
    expect(placed.get('tracing.ports')).toEqual(['tracing-egress.egress.0.ports']);
  });

  it('derive who reaches what from the topology: the broker from sinkBound, the dev issuer from the public APIs', () => {
    expect(CLIENTS.broker).toEqual(['profile', 's3-source']);
    expect(CLIENTS.devIssuer).toEqual(['gateway', 'presign', 'profile', 'subscribe']);
    expect(CLIENTS.kubeApi).toEqual(['moderate', 'profile', 'push', 'subscribe', 'thumbnail', 'vapid-init']);
    expect(CLIENTS.https).not.toContain('s3-source');
  });
});

/** kind with tracing on: the collector egress, and s3-source reading recorded traces from DynamoDB Local. */
const tracedKind: Variant = { ...variants.kind, when: [...variants.kind.when, 'tracing', 'tracingStandIns'] };

describe('the kind chart with tracing on, as helm renders it', async () => {
  // Helm merges maps: an operator's labels replace the default's by key (null drops one).
  const collector = { namespace: 'otel', labels: { 'app.kubernetes.io/name': 'otel-collector' } };
  const objects = await helmTemplate('kind', {
    extra: [
      '--set', 'tracing.endpoint=http://collector.otel.svc.cluster.local:4318',
      '--set', `tracing.collector.namespace=${collector.namespace}`,
      '--set-json', `tracing.collector.podLabels=${JSON.stringify(collector.labels)}`,
      '--set-json', 'tracing.collector.ports=[{"protocol":"TCP","port":4318}]',
    ],
  });

  it('gives every service the endpoint, and holds the tracing policies with the values in place', () => {
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'avatar-pipeline-env') as (K8sObject & { data: Record<string, string> }) | undefined;
    expect(config?.data['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://collector.otel.svc.cluster.local:4318');
    const expected = render(
      networkPolicies({ ...settings, tracingCollector: { namespace: collector.namespace, podLabels: collector.labels, ports: [{ protocol: 'TCP', port: 4318 }] } }),
      tracedKind.when,
    ).filter((p) => ['tracing-egress', 's3-source-trace-lookup', 'dynamodb-from-s3-source'].includes(p.metadata.name));
    const actual = networkPoliciesOf(objects).filter((p) => expected.some((e) => e.metadata.name === p.metadata.name));
    expect(actual.map((p) => ({ name: p.metadata.name, spec: p.spec }))).toEqual(expected.map((p) => ({ name: p.metadata.name, spec: p.spec })));
  });
});

describe.each(Object.entries({ ...variants, 'kind with tracing': tracedKind }))('the %s variant', (_name, variant) => {
  const objects = objectsOf(variant);

  it('meets every invariant', () => {
    expect(podTemplates(objects).length).toBe(variant.workloads.length - others.length);
    expect(deniesEgress(objects)).toBe(true);
    expect(networkPolicyProblems(objects, options)).toEqual([]);
  });

  it('reports a missing default deny', () => {
    expect(defaultDenyProblems(without(objects, 'default-deny'))).toEqual([expect.stringContaining('no default-deny ingress policy')]);
  });

  it("reports a pod no policy names (the gateway's own policy removed)", () => {
    // On kind minio-clients and dev-issuer-clients still declare the gateway's egress.
    expect(coverageProblems(without(objects, 'gateway'))).toContain('Deployment gateway: no policy declares its ingress');
  });

  it('reports a Knative Service that does not admit the eventing namespace', () => {
    const broken = structuredClone(objects);
    const rules = policy(broken, 'knative-data-plane').spec.ingress ?? [];
    for (const rule of rules) rule.from = (rule.from ?? []).filter((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] !== 'knative-eventing');
    const problems = knativeNamespaceProblems(broken, options);
    expect(problems).toContain('Service push: does not admit namespace knative-eventing on the queue-proxy port 8012');
    expect(problems).toHaveLength(podTemplates(objects).filter((p) => p.kind === 'Service').length);
  });

  it('reports push opened to port 80', () => {
    const broken = structuredClone(objects);
    policy(broken, 'https-egress').spec.egress?.[0]?.ports?.push({ protocol: 'TCP', port: 80 });
    expect(pushEgressProblems(broken, options)).toEqual(['push: NetworkPolicy https-egress egress rule 1 allows TCP 80']);
  });

  it('reports push given a port range or every port', () => {
    const broken = [
      ...objects,
      extraPolicy('push-range', { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'push' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 443, endPort: 8443 }] }] }),
      extraPolicy('push-any', { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'push' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] }),
    ];
    expect(pushEgressProblems(broken, options)).toEqual([
      'push: NetworkPolicy push-range egress rule 1 allows TCP 443-8443',
      'push: NetworkPolicy push-any egress rule 1 allows every port',
    ]);
  });

  it('reports a policy that selects no pod, and an in-namespace peer that selects none', () => {
    const broken = [
      ...objects,
      extraPolicy('stale', { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'renamed' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'gone' } } }] }] }),
    ];
    expect(deadSelectorProblems(broken)).toEqual([
      'NetworkPolicy stale: podSelector {"matchLabels":{"app.kubernetes.io/name":"renamed"}} selects no pod',
      'NetworkPolicy stale: peer {"podSelector":{"matchLabels":{"app.kubernetes.io/name":"gone"}}} selects no pod',
    ]);
  });

  it('reports an empty peer, a rule admitting everyone, a namespace-wide peer and an ingress ipBlock', () => {
    const broken = structuredClone(objects);
    const knative = policy(broken, 'knative-data-plane').spec.ingress ?? [];
    knative[0]?.from?.push({});
    knative.push({ ports: [{ protocol: 'TCP', port: 8080 }] });
    knative.push({ from: [{ namespaceSelector: {} }, { podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }] });
    expect(peerProblems(broken, options)).toEqual([
      'NetworkPolicy knative-data-plane: ingress rule 1: empty peer {} (everything)',
      'NetworkPolicy knative-data-plane: ingress rule 3 admits every source (no from)',
      'NetworkPolicy knative-data-plane: ingress rule 4: peer {"namespaceSelector":{}} selects every namespace',
      'NetworkPolicy knative-data-plane: ingress rule 4: peer {"podSelector":{}} selects every pod of the namespace',
      'NetworkPolicy knative-data-plane: ingress rule 4: ipBlock peer {"ipBlock":{"cidr":"10.0.0.0/8"}} in ingress (only egress, or the gateway\'s public port)',
    ]);
  });

  it("admits everyone only at the gateway's public port", () => {
    const open = structuredClone(objects);
    const gateway = policy(open, 'gateway').spec;
    (gateway.ingress ?? [])[0] = { ports: [{ protocol: 'TCP', port: 8080 }] };
    expect(peerProblems(open, options)).toEqual([]);
    gateway.ingress?.push({ ports: [{ protocol: 'TCP', port: 9000 }] });
    gateway.egress?.push({ ports: [{ protocol: 'TCP', port: 443 }] });
    expect(peerProblems(open, options)).toEqual([
      'NetworkPolicy gateway: ingress rule 2 admits every source (no from)',
      'NetworkPolicy gateway: egress rule 2 reaches every destination (no to)',
    ]);
  });
});

describe('the kind variant', () => {
  const objects = objectsOf(variants.kind);

  it('reports in-namespace traffic allowed at one end only (dynamodb-clients removed)', () => {
    const problems = reciprocityProblems(without(objects, 'dynamodb-clients'));
    expect(problems).toContain('Service push -> Deployment dynamodb on TCP 8000: NetworkPolicy dynamodb allows the ingress, no policy the egress');
    expect(problems).toHaveLength(CLIENTS.dynamodb.length);
  });

  it('reports a Job that no policy declares ingress-free (stand-ins-setup removed)', () => {
    expect(coverageProblems(without(objects, 'stand-ins-setup'))).toEqual(['Job stand-ins-setup: no policy declares its ingress']);
  });

  it('lets push reach the stand-ins and the Kubernetes API only where the options name it', () => {
    expect(pushEgressProblems(objects, options)).toEqual([]);
    expect(pushEgressProblems(objects, { ...options, kubeApi: { cidr: '172.18.0.2/32', port: 443 } })).toEqual([
      'push: NetworkPolicy kube-api-egress egress rule 1 allows TCP 6443',
    ]);
  });
});

describe('the eks variant', () => {
  it("reports the gateway's ingress and egress undeclared without its policy", () => {
    expect(coverageProblems(without(objectsOf(variants.eks), 'gateway'))).toEqual([
      'Deployment gateway: no policy declares its ingress',
      'Deployment gateway: no policy declares its egress (the namespace denies egress by default)',
    ]);
  });

  it('reports the kind-only policies as dead when rendered without their workloads', () => {
    const objects = [...variants.eks.workloads, ...render(networkPolicies(variants.eks.settings), ['s3SourcePoller', 'reconciler', 'standIns', 'devIssuer'])];
    const dead = deadSelectorProblems(objects).filter((p) => p.endsWith('selects no pod'));
    for (const name of ['dev-issuer', 'minio', 'dynamodb', 'stand-ins-setup']) expect(dead.join('\n')).toContain(`NetworkPolicy ${name}: podSelector`);
  });

  it('reports the poller without its own policy: nothing declares its ingress', () => {
    expect(coverageProblems(without(objectsOf(variants.eks), 's3-source-poller'))).toEqual(['Deployment s3-source: no policy declares its ingress']);
  });

  it("reports the reconciler's pods undeclared without its policy", () => {
    expect(coverageProblems(without(objectsOf(variants.eks), 'reconciler'))).toEqual([
      'CronJob reconciler: no policy declares its ingress',
      'CronJob reconciler: no policy declares its egress (the namespace denies egress by default)',
    ]);
  });
});

/** networkPolicy.* of an environment's values. */
interface NetworkPolicyValues extends NetworkPolicySettings {
  enabled: boolean;
}

describe.each((await renderedEnvironments()).map((env) => [env.name, env] as const))('the %s chart as helm renders it', (name: EnvironmentName, env) => {
  const values = valueAt(env.values, 'networkPolicy') as NetworkPolicyValues;
  const { enabled, ...policyValues } = values;
  const fromValues: NetworkPolicySettings = { ...policyValues, tracingCollector: valueAt(env.values, 'tracing', 'collector') as NetworkPolicySettings['tracingCollector'] };
  // Pods read the Kubernetes API only with the events-OIDC keys from it, or the VAPID keys in a Secret.
  const usesKubeApi = valueAt(env.values, 'eventsOidc', 'fromKubernetesApi') === true || valueAt(env.values, 'vapid', 'store') === 'k8s-secret';
  const realOptions: NetworkPolicyInvariantOptions = {
    knativeNamespaces: { serving: values.namespaces.knativeServing, eventing: values.namespaces.knativeEventing, ingress: values.namespaces.ingress },
    ...(usesKubeApi ? { kubeApi: values.kubeApiServer } : {}),
  };
  const variant = variants[name];
  const real = env.objects;
  const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);

  it('meets every invariant, with egress denied by default', () => {
    expect(enabled).toBe(true);
    expect(deniesEgress(real)).toBe(true);
    expect(networkPolicyProblems(real, realOptions)).toEqual([]);
  });

  it("holds exactly the variant's policies, with the environment's values in place", () => {
    const expected = render(networkPolicies(fromValues), variant.when).map((p) => ({ name: p.metadata.name, spec: p.spec }));
    const actual = networkPoliciesOf(real).map((p) => ({ name: p.metadata.name, spec: p.spec }));
    expect(actual.sort(byName)).toEqual(expected.sort(byName));
    for (const p of networkPoliciesOf(real)) expect(p.metadata.namespace, p.metadata.name).toBe(env.namespace);
  });

  it('has the pods the stand-in workloads model, labelled as they are', () => {
    const pods = podTemplates(real);
    const modelled = podTemplates(variant.workloads);
    const key = (p: { kind: string; name: string }) => `${p.kind} ${p.name}`;
    expect(pods.map(key).sort()).toEqual(modelled.map(key).sort());
    for (const pod of pods) expect(pod.labels, key(pod)).toMatchObject(modelled.find((m) => key(m) === key(pod))?.labels ?? {});
  });
});

describe('label selectors', () => {
  const pod = { 'app.kubernetes.io/name': 'push', tier: 'api' };

  it('evaluate matchLabels and the four matchExpressions operators', () => {
    expect(matches({}, pod)).toBe(true);
    expect(matches({ matchLabels: { 'app.kubernetes.io/name': 'push' } }, pod)).toBe(true);
    expect(matches({ matchLabels: { 'app.kubernetes.io/name': 'push', tier: 'web' } }, pod)).toBe(false);
    expect(matches({ matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['push', 'presign'] }] }, pod)).toBe(true);
    expect(matches({ matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'NotIn', values: ['push'] }] }, pod)).toBe(false);
    expect(matches({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['x'] }] }, pod)).toBe(true);
    expect(matches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, pod)).toBe(true);
    expect(matches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, pod)).toBe(false);
  });

  it('report what they cannot evaluate instead of guessing', () => {
    const selector = { matchExpressions: [{ key: 'tier', operator: 'Gt', values: ['1'] }, { key: 'tier', operator: 'In' }] };
    expect(matches(selector, pod)).toBe(false);
    expect(selectorProblems(selector)).toEqual(['unsupported matchExpressions operator Gt (key tier)', 'matchExpressions tier In: values must be non-empty']);
    const objects = [...objectsOf(variants.kind), extraPolicy('odd', { podSelector: selector, policyTypes: ['Ingress'] })];
    expect(deadSelectorProblems(objects)).toEqual([
      'NetworkPolicy odd: unsupported matchExpressions operator Gt (key tier)',
      'NetworkPolicy odd: matchExpressions tier In: values must be non-empty',
      'NetworkPolicy odd: podSelector {"matchExpressions":[{"key":"tier","operator":"Gt","values":["1"]},{"key":"tier","operator":"In"}]} selects no pod',
    ]);
  });
});
