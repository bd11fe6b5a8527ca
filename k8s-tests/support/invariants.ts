/**
 * Cross-object invariants of an environment as the chart renders it. Each check returns the problems it
 * finds (empty when all is well), so tests can also run it on deliberately broken copies.
 */
import { matchesFilters, type Filter } from '@avatar-pipeline/kit/filters';
import { emits, externalEvents, S3_OBJECT_CREATED_PREFIX, serviceNames, UPLOAD_PREFIX, type ServiceName } from '@avatar-pipeline/kit/topology';
import { ofKind, type K8sObject } from './manifests.js';

export const KSVC = ['serving.knative.dev/v1', 'Service'] as const;

export interface Destination {
  ref?: { apiVersion: string; kind: string; name: string };
  uri?: string;
  audience?: string;
}
export interface TriggerObject extends K8sObject {
  spec: {
    broker: string;
    filters?: Filter[];
    subscriber: Destination;
    delivery?: { retry?: number; backoffPolicy?: string; backoffDelay?: string; timeout?: string; deadLetterSink?: Destination };
  };
}
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string; optional?: boolean } };
}
export interface EnvFrom {
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: EnvFrom[];
  readinessProbe?: { httpGet?: { path?: string; port?: number | string } };
  livenessProbe?: { httpGet?: { path?: string; port?: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type?: string };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
export interface PodSpec {
  containers: Container[];
  automountServiceAccountToken?: boolean;
  timeoutSeconds?: number;
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  volumes?: { name: string; emptyDir?: unknown }[];
  serviceAccountName?: string;
}
export interface KnativeServiceObject extends K8sObject {
  spec: { template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec & { containerConcurrency?: number } } };
}

export interface DeploymentObject extends K8sObject {
  spec: { replicas?: number; selector: { matchLabels?: Record<string, string> }; template: { metadata: { labels?: Record<string, string> }; spec: PodSpec } };
}

export const knativeServices = (objects: readonly K8sObject[]) => ofKind(objects, ...KSVC) as KnativeServiceObject[];
export const deployments = (objects: readonly K8sObject[]) => ofKind(objects, 'apps/v1', 'Deployment') as DeploymentObject[];

/**
 * What runs a service: its Knative Service, or a Deployment of that name (s3-source polling SQS,
 * which gets no requests for Knative to scale on). Undefined when neither exists.
 */
export function serviceWorkload(objects: readonly K8sObject[], name: string): KnativeServiceObject | DeploymentObject | undefined {
  return knativeServices(objects).find((k) => k.metadata.name === name) ?? deployments(objects).find((d) => d.metadata.name === name);
}

/** The service's container (the only one of its pod). */
export const serviceContainer = (objects: readonly K8sObject[], name: string): Container | undefined => serviceWorkload(objects, name)?.spec.template.spec.containers[0];
export const triggersOf = (objects: readonly K8sObject[]) => ofKind(objects, 'eventing.knative.dev/v1', 'Trigger') as TriggerObject[];

/** Does a destination point at an object of the chart? */
function resolves(destination: Destination | undefined, objects: readonly K8sObject[]): boolean {
  const ref = destination?.ref;
  if (!ref) return false;
  return objects.some((o) => o.apiVersion === ref.apiVersion && o.kind === ref.kind && o.metadata.name === ref.name);
}

const BROKER = ['eventing.knative.dev/v1', 'Broker'] as const;
type BrokerObject = K8sObject & { spec: { delivery?: { deadLetterSink?: Destination } } };
export const brokersOf = (objects: readonly K8sObject[]) => ofKind(objects, ...BROKER) as BrokerObject[];
const isBroker = (d: Destination | undefined) => d?.ref?.apiVersion === BROKER[0] && d.ref.kind === BROKER[1];

/** Where a Trigger's undeliverable events go: its own dead-letter sink, else its Broker's default (Knative's precedence). */
export function deadLetterSinkOf(trigger: TriggerObject, objects: readonly K8sObject[]): Destination | undefined {
  return trigger.spec.delivery?.deadLetterSink ?? brokersOf(objects).find((b) => b.metadata.name === trigger.spec.broker)?.spec.delivery?.deadLetterSink;
}

/** The Brokers some Trigger or Broker dead-letters to: the end of the line, which need no dead-letter sink of their own. */
export function deadLetterBrokers(objects: readonly K8sObject[]): Set<string> {
  const sinks = [...triggersOf(objects).map((t) => t.spec.delivery?.deadLetterSink), ...brokersOf(objects).map((b) => b.spec.delivery?.deadLetterSink)];
  return new Set(sinks.filter(isBroker).map((d) => d!.ref!.name));
}

/**
 * Every Trigger's broker and subscriber exist, and its dead-letter sink (a Knative Service with a
 * path, or a dead-letter Broker): required except on a dead-letter Broker, never that Broker
 * itself. Every Broker that is no dead-letter Broker has a dead-letter sink that exists; every
 * SinkBinding's subject and sink exist.
 */
export function destinationProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const brokers = new Set(brokersOf(objects).map((b) => b.metadata.name));
  const terminal = deadLetterBrokers(objects);
  const sinkProblems = (at: string, sink: Destination | undefined, required: boolean, own?: string): string[] => {
    if (!sink) return required ? [`${at}: no dead-letter sink`] : [];
    if (!resolves(sink, objects)) return [`${at}: dead-letter sink ${sink.ref?.name ?? '(none)'} does not exist`];
    if (isBroker(sink)) return sink.ref?.name === own ? [`${at}: dead-letters to its own broker ${own}`] : [];
    return sink.uri?.startsWith('/') ? [] : [`${at}: dead-letter sink ${sink.ref?.name ?? '(none)'} has no path`];
  };
  for (const trigger of triggersOf(objects)) {
    const name = `Trigger ${trigger.metadata.name}`;
    if (!brokers.has(trigger.spec.broker)) problems.push(`${name}: broker ${trigger.spec.broker} does not exist`);
    if (!resolves(trigger.spec.subscriber, objects)) problems.push(`${name}: subscriber ${trigger.spec.subscriber.ref?.name ?? '(none)'} does not exist`);
    if (!trigger.spec.subscriber.uri?.startsWith('/')) problems.push(`${name}: subscriber has no path`);
    problems.push(...sinkProblems(name, deadLetterSinkOf(trigger, objects), !terminal.has(trigger.spec.broker), trigger.spec.broker));
  }
  for (const broker of brokersOf(objects)) {
    problems.push(...sinkProblems(`Broker ${broker.metadata.name}`, broker.spec.delivery?.deadLetterSink, !terminal.has(broker.metadata.name), broker.metadata.name));
  }
  for (const binding of ofKind(objects, 'sources.knative.dev/v1', 'SinkBinding') as (K8sObject & { spec: { subject: SinkBindingSubject; sink: Destination } })[]) {
    const subject = binding.spec.subject;
    if (!subjectExists(subject, objects)) {
      problems.push(`SinkBinding ${binding.metadata.name}: subject ${subject.name ?? JSON.stringify(subject.selector ?? null)} does not exist`);
    }
    if (!resolves(binding.spec.sink, objects)) problems.push(`SinkBinding ${binding.metadata.name}: sink does not exist`);
  }
  return problems;
}

/** A SinkBinding's subject: one object by name, or every object of its kind matching a selector. */
export interface SinkBindingSubject {
  apiVersion: string;
  kind: string;
  name?: string;
  selector?: { matchLabels?: Record<string, string> };
}

const labelsMatch = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/**
 * Whether a SinkBinding's subject is there: the named object, or for a selector, an object of the
 * kind whose labels match, or (Jobs) a CronJob whose jobTemplate gives its Jobs matching labels.
 */
export function subjectExists(subject: SinkBindingSubject, objects: readonly K8sObject[]): boolean {
  if (subject.name !== undefined) return objects.some((o) => o.apiVersion === subject.apiVersion && o.kind === subject.kind && o.metadata.name === subject.name);
  const selector = subject.selector?.matchLabels ?? {};
  return objects.some((o) => {
    if (o.apiVersion === subject.apiVersion && o.kind === subject.kind) return labelsMatch(selector, o.metadata.labels);
    const jobLabels = (o as { spec?: { jobTemplate?: { metadata?: { labels?: Record<string, string> } } } }).spec?.jobTemplate?.metadata?.labels;
    return subject.apiVersion === 'batch/v1' && subject.kind === 'Job' && o.apiVersion === 'batch/v1' && o.kind === 'CronJob' && labelsMatch(selector, jobLabels);
  });
}

/** Knative filter semantics over the Trigger objects (the kit's, which the local broker uses too). */
export function triggerAccepts(trigger: TriggerObject, attributes: Readonly<Record<string, string>>): boolean {
  return matchesFilters(trigger.spec.filters ?? [], attributes);
}

/** An example event of an emitted type (`prefix*` patterns stand for one concrete type). */
function sampleEvent(type: string): Record<string, string> {
  const concrete = type.endsWith('*') ? `${type.slice(0, -1)}Post` : type;
  return { type: concrete, subject: `${UPLOAD_PREFIX}player-1/0190a0e0-0000-7000-8000-000000000000` };
}

/**
 * Every event type a service emits (kit `emits`) reaches at least one Trigger of a Broker the
 * services post to (a SinkBinding's sink), and when that Trigger gives up on it, a Trigger of the
 * dead-letter Broker it goes to (dead letters keep their type) takes it in turn. Types for
 * consumers outside the system (kit `externalEvents`) need no Trigger of ours.
 */
export function consumerProblems(objects: readonly K8sObject[], emitted: Readonly<Record<ServiceName, readonly string[]>> = emits): string[] {
  const triggers = triggersOf(objects);
  const bindings = ofKind(objects, 'sources.knative.dev/v1', 'SinkBinding') as (K8sObject & { spec: { sink: Destination } })[];
  const ingress = new Set(bindings.map((b) => b.spec.sink).filter(isBroker).map((d) => d.ref!.name));
  const on = (broker: string) => triggers.filter((t) => t.spec.broker === broker);
  const problems: string[] = [];
  for (const service of serviceNames) {
    for (const type of emitted[service]) {
      if ((externalEvents as readonly string[]).includes(type)) continue;
      const event = sampleEvent(type);
      const taking = [...ingress].flatMap((b) => on(b).filter((t) => triggerAccepts(t, event)));
      if (taking.length === 0) problems.push(`${service} emits ${type}, which no Trigger consumes`);
      for (const trigger of taking) {
        const sink = deadLetterSinkOf(trigger, objects);
        if (isBroker(sink) && !on(sink!.ref!.name).some((t) => triggerAccepts(t, event))) {
          problems.push(`${type} dead-lettered by Trigger ${trigger.metadata.name} to Broker ${sink!.ref!.name}, where no Trigger consumes it`);
        }
      }
    }
  }
  // Two services emitting one type (approved, rejected: moderate, and profile for a moderator) meet one dead-letter problem once.
  return [...new Set(problems)];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/**
 * Every ServiceAccount a RoleBinding or ClusterRoleBinding names exists in the chart, in the
 * namespace named (a RoleBinding's subject without one means the binding's own namespace).
 */
export function rbacSubjectProblems(objects: readonly K8sObject[]): string[] {
  const accounts = new Set(ofKind(objects, 'v1', 'ServiceAccount').map((a) => `${a.metadata.namespace}/${a.metadata.name}`));
  const bindings = ['RoleBinding', 'ClusterRoleBinding'].flatMap((kind) => ofKind(objects, 'rbac.authorization.k8s.io/v1', kind)) as (K8sObject & { subjects?: Subject[] })[];
  return bindings.flatMap((binding) =>
    (binding.subjects ?? [])
      .filter((s) => s.kind === 'ServiceAccount')
      .map((s) => `${s.namespace ?? (binding.kind === 'RoleBinding' ? binding.metadata.namespace : '(none)')}/${s.name}`)
      .filter((account) => !accounts.has(account))
      .map((account) => `${binding.kind} ${binding.metadata.name}: ServiceAccount ${account} does not exist`),
  );
}

const containersOf = (spec: PodSpec) => [...spec.containers, ...(spec.initContainers ?? [])];

/** The restricted Pod Security Standard, for any pod template (pod-level settings count). */
export function restrictedProblems(where: string, spec: PodSpec): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  for (const c of containersOf(spec)) {
    const s = c.securityContext ?? {};
    const at = `${where} container ${c.name}`;
    if ((s.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
    if ((s.runAsUser ?? pod.runAsUser) === 0) problems.push(`${at}: runs as uid 0`);
    if (s.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (s.privileged === true) problems.push(`${at}: privileged`);
    if (!s.capabilities?.drop?.includes('ALL')) problems.push(`${at}: does not drop ALL capabilities`);
    if ((s.capabilities?.add ?? []).some((cap) => cap !== 'NET_BIND_SERVICE')) problems.push(`${at}: adds capabilities`);
    const seccomp = s.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${at}: no RuntimeDefault seccomp profile`);
    if (s.readOnlyRootFilesystem !== true) problems.push(`${at}: root filesystem is writable`);
    else if (!(c.volumeMounts ?? []).some((m) => m.mountPath === '/tmp' && spec.volumes?.some((v) => v.name === m.name && v.emptyDir !== undefined))) {
      problems.push(`${at}: read-only root without an emptyDir /tmp`);
    }
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    if (!requests['cpu'] || !requests['memory']) problems.push(`${at}: no cpu and memory requests`);
    if (!limits['memory']) problems.push(`${at}: no memory limit`);
  }
  return problems;
}

/** Pod templates of every workload in the chart (a CronJob's: its jobTemplate's), by a readable name. */
export function podTemplates(objects: readonly K8sObject[]): { where: string; spec: PodSpec }[] {
  return objects.flatMap((o) => {
    const spec = (o as { spec?: { template?: { spec?: PodSpec }; jobTemplate?: { spec?: { template?: { spec?: PodSpec } } } } }).spec;
    const template = spec?.template?.spec ?? spec?.jobTemplate?.spec?.template?.spec;
    return template?.containers ? [{ where: `${o.kind} ${o.metadata.name}`, spec: template }] : [];
  });
}

/** What every Knative Service needs beyond the restricted standard. */
export function knativeServiceProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const accounts = new Set(ofKind(objects, 'v1', 'ServiceAccount').map((a) => a.metadata.name));
  for (const ksvc of knativeServices(objects)) {
    const at = `Knative Service ${ksvc.metadata.name}`;
    const { spec } = ksvc.spec.template;
    const [container] = spec.containers;
    if (ksvc.metadata.labels?.['networking.knative.dev/visibility'] !== 'cluster-local') problems.push(`${at}: not cluster-local`);
    if (container?.readinessProbe?.httpGet?.path !== '/readyz') problems.push(`${at}: no /readyz readiness probe`);
    if (container?.livenessProbe?.httpGet?.path !== '/healthz') problems.push(`${at}: no /healthz liveness probe`);
    if (!spec.serviceAccountName || !accounts.has(spec.serviceAccountName)) problems.push(`${at}: service account ${spec.serviceAccountName ?? '(none)'} does not exist`);
    const annotations = ksvc.spec.template.metadata.annotations ?? {};
    const min = Number(annotations['autoscaling.knative.dev/min-scale']);
    const max = Number(annotations['autoscaling.knative.dev/max-scale']);
    const target = Number(annotations['autoscaling.knative.dev/target']);
    const concurrency = spec.containerConcurrency ?? 0;
    if (!(min >= 0 && max >= 1 && min <= max)) problems.push(`${at}: min-scale ${min} / max-scale ${max} are not a range`);
    if (!(concurrency > 0 && target > 0 && target <= concurrency)) problems.push(`${at}: target ${target} must be within containerConcurrency ${concurrency}`);
  }
  return problems;
}

/** What a service run as a Deployment needs beyond the restricted standard: probes, its own account, the metrics port. */
export function serviceDeploymentProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const accounts = new Set(ofKind(objects, 'v1', 'ServiceAccount').map((a) => a.metadata.name));
  for (const deployment of deployments(objects).filter((d) => (serviceNames as readonly string[]).includes(d.metadata.name))) {
    const at = `Deployment ${deployment.metadata.name}`;
    const { spec } = deployment.spec.template;
    if (spec.containers.length !== 1) problems.push(`${at}: ${spec.containers.length} containers`);
    const [container] = spec.containers;
    const port = container?.ports?.find((p) => p.name === 'user-port');
    if (!port) problems.push(`${at}: no container port named user-port`);
    for (const [probe, path] of [
      ['readinessProbe', '/readyz'],
      ['livenessProbe', '/healthz'],
    ] as const) {
      const get = container?.[probe]?.httpGet;
      if (get?.path !== path || (get.port !== 'user-port' && get.port !== port?.containerPort)) problems.push(`${at}: no ${path} ${probe} on its port`);
    }
    if (spec.serviceAccountName !== deployment.metadata.name || !accounts.has(spec.serviceAccountName)) {
      problems.push(`${at}: runs as ${spec.serviceAccountName ?? '(none)'}, not its own ServiceAccount`);
    }
    const selector = Object.entries(deployment.spec.selector.matchLabels ?? {});
    const labels = deployment.spec.template.metadata.labels ?? {};
    if (selector.length === 0 || !selector.every(([k, v]) => labels[k] === v)) problems.push(`${at}: its selector does not select its pods`);
  }
  return problems;
}

/** The S3 notification types s3-source can emit. */
export const s3CreatedType = `${S3_OBJECT_CREATED_PREFIX}*`;
