/**
 * NetworkPolicy invariants over the rendered objects of one namespace (the cdk8s synthesis or
 * `helm template`). Each check returns the problems it finds, empty when all is well, so tests can
 * also run it on deliberately broken copies.
 *
 * Pods are the pod templates of the objects (Deployments, StatefulSets, DaemonSets, ReplicaSets,
 * Jobs, CronJobs, bare Pods, and Knative Services, whose revision pods Knative labels
 * `serving.knative.dev/service: <name>` on top of the template's labels). Selectors are evaluated
 * as Kubernetes does: matchLabels and the matchExpressions operators In, NotIn, Exists and
 * DoesNotExist; anything else is reported rather than guessed.
 */
import type { K8sObject } from './manifests.js';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
export interface NetworkPolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
interface Rule {
  ports?: NetworkPolicyPort[];
  peers: NetworkPolicyPeer[] | undefined;
}
export interface NetworkPolicyObject extends K8sObject {
  spec: {
    podSelector?: LabelSelector;
    policyTypes?: string[];
    ingress?: { ports?: NetworkPolicyPort[]; from?: NetworkPolicyPeer[] }[];
    egress?: { ports?: NetworkPolicyPort[]; to?: NetworkPolicyPeer[] }[];
  };
}

export const APP_NAME_LABEL = 'app.kubernetes.io/name';
export const KNATIVE_SERVICE_POD_LABEL = 'serving.knative.dev/service';
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
/** The queue-proxy's request port: where Knative's data plane delivers to a revision pod. */
export const QUEUE_PROXY_PORT = 8012;

export interface NetworkPolicyInvariantOptions {
  /** The namespaces of Knative's data plane, as the values name them. */
  knativeNamespaces: { serving: string; eventing: string; ingress: string };
  /** The public edge: the only workload whose port may admit every source (or ipBlocks). Default gateway, 8080. */
  gateway?: { name: string; port: number };
  /** The workload that calls URLs chosen by clients (Web Push endpoints). Default push. */
  push?: string;
  /** The Kubernetes API as the values name it, when pods use it: push may reach it there (kind). */
  kubeApi?: { cidr: string; port: number };
}

export interface PodTemplate {
  /** `<Kind> <name>` of the object. */
  where: string;
  /** Its `app.kubernetes.io/name`, else the object's name. */
  name: string;
  kind: string;
  labels: Record<string, string>;
}

type Labels = Record<string, string>;
interface TemplateSpec {
  metadata?: { labels?: Labels };
}

/** The pods the objects produce, with the labels those pods carry. */
export function podTemplates(objects: readonly K8sObject[]): PodTemplate[] {
  return objects.flatMap((o): PodTemplate[] => {
    const spec = (o as { spec?: { template?: TemplateSpec; jobTemplate?: { spec?: { template?: TemplateSpec } } } }).spec;
    let labels: Labels | undefined;
    if (o.apiVersion === 'serving.knative.dev/v1' && o.kind === 'Service') {
      labels = { ...spec?.template?.metadata?.labels, [KNATIVE_SERVICE_POD_LABEL]: o.metadata.name };
    } else if (o.kind === 'CronJob') {
      labels = spec?.jobTemplate?.spec?.template?.metadata?.labels ?? {};
    } else if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind) && spec?.template) {
      labels = spec.template.metadata?.labels ?? {};
    } else if (o.apiVersion === 'v1' && o.kind === 'Pod') {
      labels = o.metadata.labels ?? {};
    }
    if (!labels) return [];
    return [{ where: `${o.kind} ${o.metadata.name}`, name: labels[APP_NAME_LABEL] ?? o.metadata.name, kind: o.kind, labels }];
  });
}

export const networkPoliciesOf = (objects: readonly K8sObject[]) =>
  objects.filter((o) => o.apiVersion === 'networking.k8s.io/v1' && o.kind === 'NetworkPolicy') as NetworkPolicyObject[];

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** What in a selector cannot be evaluated (or is invalid in Kubernetes). */
export function selectorProblems(selector: LabelSelector | undefined): string[] {
  return (selector?.matchExpressions ?? []).flatMap((e) => {
    if (!OPERATORS.has(e.operator)) return [`unsupported matchExpressions operator ${e.operator} (key ${e.key})`];
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    if (needsValues !== (Array.isArray(e.values) && e.values.length > 0)) return [`matchExpressions ${e.key} ${e.operator}: values must be ${needsValues ? 'non-empty' : 'absent'}`];
    return [];
  });
}

/** Does the selector select these labels? (An unsupported operator selects nothing.) */
export function matches(selector: LabelSelector | undefined, labels: Labels): boolean {
  const { matchLabels = {}, matchExpressions = [] } = selector ?? {};
  if (!Object.entries(matchLabels).every(([key, value]) => labels[key] === value)) return false;
  return matchExpressions.every((e) => {
    const present = Object.hasOwn(labels, e.key);
    const label = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        return present && label !== undefined && values.includes(label);
      case 'NotIn':
        return !present || (label !== undefined && !values.includes(label));
      case 'Exists':
        return present;
      case 'DoesNotExist':
        return !present;
      default:
        return false;
    }
  });
}

const isEmpty = (selector: LabelSelector | undefined) =>
  Object.keys(selector?.matchLabels ?? {}).length === 0 && (selector?.matchExpressions ?? []).length === 0;

/** Policy types as Kubernetes defaults them: Ingress always, Egress when there are egress rules. */
export function policyTypes(policy: NetworkPolicyObject): string[] {
  return policy.spec.policyTypes ?? ['Ingress', ...((policy.spec.egress ?? []).length > 0 ? ['Egress'] : [])];
}

/** Applies to every pod of the namespace. */
const namespaceWide = (policy: NetworkPolicyObject) => isEmpty(policy.spec.podSelector);

const selects = (policy: NetworkPolicyObject, pod: PodTemplate) => matches(policy.spec.podSelector, pod.labels);

const ingressRules = (policy: NetworkPolicyObject): Rule[] =>
  policyTypes(policy).includes('Ingress') ? (policy.spec.ingress ?? []).map((r) => ({ ...(r.ports ? { ports: r.ports } : {}), peers: r.from })) : [];
const egressRules = (policy: NetworkPolicyObject): Rule[] =>
  policyTypes(policy).includes('Egress') ? (policy.spec.egress ?? []).map((r) => ({ ...(r.ports ? { ports: r.ports } : {}), peers: r.to })) : [];

/** A peer inside the policy's own namespace, by pod labels only. */
const inNamespace = (peer: NetworkPolicyPeer) => peer.podSelector !== undefined && !peer.namespaceSelector && !peer.ipBlock;

const describePeer = (peer: NetworkPolicyPeer) => JSON.stringify(peer);

/** Does the rule's port list allow this port (undefined: every port)? */
function allowsPort(ports: NetworkPolicyPort[] | undefined, port: number | undefined, protocol = 'TCP'): boolean {
  if (!ports || ports.length === 0) return true;
  if (port === undefined) return false;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (p.port === port || p.port === String(port)) return true;
    return typeof p.port === 'number' && p.endPort !== undefined && port >= p.port && port <= p.endPort;
  });
}

/** (a) The namespace isolates every pod for ingress: an empty podSelector, Ingress, no rules. */
export function defaultDenyProblems(objects: readonly K8sObject[]): string[] {
  const denies = networkPoliciesOf(objects).some((p) => namespaceWide(p) && policyTypes(p).includes('Ingress') && (p.spec.ingress ?? []).length === 0);
  return denies ? [] : ['no default-deny ingress policy (empty podSelector, policyTypes Ingress, no ingress rules)'];
}

/** Whether the namespace also denies egress by default. */
export function deniesEgress(objects: readonly K8sObject[]): boolean {
  return networkPoliciesOf(objects).some((p) => namespaceWide(p) && policyTypes(p).includes('Egress') && (p.spec.egress ?? []).length === 0);
}

/**
 * (b) Every pod is named by a policy of its own (not namespace-wide) that declares its ingress:
 * allows some or, with no ingress rules, explicitly none; and its egress likewise when the
 * namespace denies egress by default.
 */
export function coverageProblems(objects: readonly K8sObject[]): string[] {
  const policies = networkPoliciesOf(objects).filter((p) => !namespaceWide(p));
  const egress = deniesEgress(objects);
  return podTemplates(objects).flatMap((pod) => {
    const declaring = (type: string) => policies.some((p) => selects(p, pod) && policyTypes(p).includes(type));
    return [
      ...(declaring('Ingress') ? [] : [`${pod.where}: no policy declares its ingress`]),
      ...(egress && !declaring('Egress') ? [`${pod.where}: no policy declares its egress (the namespace denies egress by default)`] : []),
    ];
  });
}

/** (c) Every peer names its source or destination; no rule admits everyone but the gateway's public port. */
export function peerProblems(objects: readonly K8sObject[], options: NetworkPolicyInvariantOptions): string[] {
  const gateway = options.gateway ?? { name: 'gateway', port: 8080 };
  const pods = podTemplates(objects);
  const problems: string[] = [];
  for (const policy of networkPoliciesOf(objects)) {
    const at = `NetworkPolicy ${policy.metadata.name}`;
    const selected = pods.filter((pod) => selects(policy, pod));
    const gatewayOnly = selected.length > 0 && selected.every((pod) => pod.name === gateway.name);
    for (const [direction, rules] of [
      ['ingress', ingressRules(policy)],
      ['egress', egressRules(policy)],
    ] as const) {
      rules.forEach((rule, i) => {
        const where = `${at}: ${direction} rule ${i + 1}`;
        // The public edge: only the gateway, only its port; its peers (if any) may be addresses (a load balancer's).
        const publicEdge =
          direction === 'ingress' && gatewayOnly && (rule.ports ?? []).length === 1 && allowsPort(rule.ports, gateway.port) && rule.ports?.[0]?.endPort === undefined;
        if (!rule.peers || rule.peers.length === 0) {
          if (!publicEdge) problems.push(`${where} ${direction === 'ingress' ? 'admits every source' : 'reaches every destination'} (no ${direction === 'ingress' ? 'from' : 'to'})`);
          return;
        }
        for (const peer of rule.peers) {
          if (!peer.podSelector && !peer.namespaceSelector && !peer.ipBlock) problems.push(`${where}: empty peer {} (everything)`);
          if (peer.namespaceSelector && isEmpty(peer.namespaceSelector)) problems.push(`${where}: peer ${describePeer(peer)} selects every namespace`);
          if (!peer.namespaceSelector && peer.podSelector && isEmpty(peer.podSelector)) problems.push(`${where}: peer ${describePeer(peer)} selects every pod of the namespace`);
          if (peer.ipBlock && direction === 'ingress' && !publicEdge) problems.push(`${where}: ipBlock peer ${describePeer(peer)} in ingress (only egress, or the gateway's public port)`);
        }
      });
    }
  }
  return problems;
}

/** (d) Every Knative Service's pods admit Knative's data plane (serving, eventing, ingress) at the queue-proxy. */
export function knativeNamespaceProblems(objects: readonly K8sObject[], options: NetworkPolicyInvariantOptions): string[] {
  const policies = networkPoliciesOf(objects);
  const { serving, eventing, ingress } = options.knativeNamespaces;
  return podTemplates(objects)
    .filter((pod) => pod.kind === 'Service')
    .flatMap((pod) => {
      const rules = policies.filter((p) => selects(p, pod)).flatMap(ingressRules);
      return [serving, eventing, ingress].flatMap((namespace) => {
        const admitted = rules.some(
          (rule) =>
            allowsPort(rule.ports, QUEUE_PROXY_PORT) &&
            (!rule.peers || rule.peers.length === 0 || rule.peers.some((peer) => peer.namespaceSelector && matches(peer.namespaceSelector, { [NAMESPACE_NAME_LABEL]: namespace }))),
        );
        return admitted ? [] : [`${pod.where}: does not admit namespace ${namespace} on the queue-proxy port ${QUEUE_PROXY_PORT}`];
      });
    });
}

/**
 * (e) push (which calls URLs clients chose) reaches nothing but TCP 443 and the cluster DNS (53),
 * with two named exceptions: peers inside the namespace (the kind stand-ins) and the Kubernetes
 * API at exactly the address and port the options name.
 */
export function pushEgressProblems(objects: readonly K8sObject[], options: NetworkPolicyInvariantOptions): string[] {
  const name = options.push ?? 'push';
  const pods = podTemplates(objects).filter((pod) => pod.name === name);
  const problems: string[] = [];
  for (const policy of networkPoliciesOf(objects)) {
    if (!pods.some((pod) => selects(policy, pod))) continue;
    egressRules(policy).forEach((rule, i) => {
      const where = `${name}: NetworkPolicy ${policy.metadata.name} egress rule ${i + 1}`;
      const peers = rule.peers ?? [];
      if (!rule.ports || rule.ports.length === 0) {
        if (!(peers.length > 0 && peers.every(inNamespace))) problems.push(`${where} allows every port`);
        return;
      }
      for (const port of rule.ports) {
        const protocol = port.protocol ?? 'TCP';
        const https = protocol === 'TCP' && port.port === 443 && port.endPort === undefined;
        const dns = port.port === 53 && port.endPort === undefined && peers.length > 0 && peers.every((peer) => peer.namespaceSelector && !peer.ipBlock);
        const standIns = peers.length > 0 && peers.every(inNamespace);
        // Named pods in a named namespace (the trace collector): no address a client could choose.
        const labelledPods =
          peers.length > 0 &&
          peers.every((peer) => !peer.ipBlock && Object.keys(peer.namespaceSelector?.matchLabels ?? {}).length > 0 && Object.keys(peer.podSelector?.matchLabels ?? {}).length > 0);
        const kubeApi =
          options.kubeApi !== undefined &&
          protocol === 'TCP' &&
          port.port === options.kubeApi.port &&
          port.endPort === undefined &&
          peers.length > 0 &&
          peers.every((peer) => peer.ipBlock?.cidr === options.kubeApi?.cidr && !peer.podSelector && !peer.namespaceSelector);
        if (!(https || dns || standIns || labelledPods || kubeApi)) problems.push(`${where} allows ${protocol} ${port.port ?? 'every port'}${port.endPort ? `-${port.endPort}` : ''}`);
      }
    });
  }
  return problems;
}

/** (f) Every selector of a policy can be evaluated, and every one about this namespace's pods selects some pod. */
export function deadSelectorProblems(objects: readonly K8sObject[]): string[] {
  const pods = podTemplates(objects);
  const problems: string[] = [];
  for (const policy of networkPoliciesOf(objects)) {
    const at = `NetworkPolicy ${policy.metadata.name}`;
    const selectors = [policy.spec.podSelector, ...[...ingressRules(policy), ...egressRules(policy)].flatMap((r) => (r.peers ?? []).flatMap((p) => [p.podSelector, p.namespaceSelector]))];
    for (const problem of selectors.flatMap(selectorProblems)) problems.push(`${at}: ${problem}`);
    if (!pods.some((pod) => selects(policy, pod))) problems.push(`${at}: podSelector ${JSON.stringify(policy.spec.podSelector ?? {})} selects no pod`);
    for (const rule of [...ingressRules(policy), ...egressRules(policy)]) {
      for (const peer of (rule.peers ?? []).filter(inNamespace)) {
        if (!pods.some((pod) => matches(peer.podSelector, pod.labels))) problems.push(`${at}: peer ${describePeer(peer)} selects no pod`);
      }
    }
  }
  return problems;
}

/**
 * (g) Traffic inside the namespace is allowed at both ends: what one pod may send to another, the
 * other may receive (if it is isolated for ingress), and the reverse (if the sender is isolated
 * for egress). A one-sided rule is a connection that is silently dropped.
 */
export function reciprocityProblems(objects: readonly K8sObject[]): string[] {
  const policies = networkPoliciesOf(objects);
  const pods = podTemplates(objects);
  const isolated = (pod: PodTemplate, type: string) => policies.some((p) => selects(p, pod) && policyTypes(p).includes(type));
  /** Does some rule of the pod's policies of this direction admit the other pod on the port? */
  const allows = (pod: PodTemplate, other: PodTemplate, direction: 'ingress' | 'egress', port: NetworkPolicyPort | undefined) =>
    policies
      .filter((p) => selects(p, pod))
      .flatMap(direction === 'ingress' ? ingressRules : egressRules)
      .some(
        (rule) =>
          (!rule.peers || rule.peers.length === 0 || rule.peers.some((peer) => inNamespace(peer) && matches(peer.podSelector, other.labels))) &&
          (port === undefined ? true : allowsPort(rule.ports, typeof port.port === 'number' ? port.port : undefined, port.protocol ?? 'TCP')),
      );
  const problems = new Set<string>();
  for (const policy of policies) {
    for (const [direction, rules] of [
      ['egress', egressRules(policy)],
      ['ingress', ingressRules(policy)],
    ] as const) {
      const otherSide = direction === 'egress' ? 'ingress' : 'egress';
      for (const rule of rules) {
        for (const peer of (rule.peers ?? []).filter(inNamespace)) {
          for (const pod of pods.filter((p) => selects(policy, p))) {
            for (const other of pods.filter((p) => p !== pod && matches(peer.podSelector, p.labels))) {
              if (!isolated(other, otherSide === 'ingress' ? 'Ingress' : 'Egress')) continue;
              for (const port of rule.ports && rule.ports.length > 0 ? rule.ports : [undefined]) {
                if (!allows(other, pod, otherSide, port)) {
                  const [from, to] = direction === 'egress' ? [pod, other] : [other, pod];
                  problems.add(
                    `${from.where} -> ${to.where}${port ? ` on ${port.protocol ?? 'TCP'} ${port.port}` : ''}: NetworkPolicy ${policy.metadata.name} allows the ${direction}, no policy the ${otherSide}`,
                  );
                }
              }
            }
          }
        }
      }
    }
  }
  return [...problems];
}

/** Every invariant above. */
export function networkPolicyProblems(objects: readonly K8sObject[], options: NetworkPolicyInvariantOptions): string[] {
  return [
    ...defaultDenyProblems(objects),
    ...coverageProblems(objects),
    ...peerProblems(objects, options),
    ...knativeNamespaceProblems(objects, options),
    ...pushEgressProblems(objects, options),
    ...deadSelectorProblems(objects),
    ...reciprocityProblems(objects),
  ];
}
