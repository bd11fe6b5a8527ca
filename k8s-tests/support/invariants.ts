/**
 * Cross-object invariants of a synthesized environment. Each check returns the problems it
 * finds (empty when all is well), so tests can also run it on deliberately broken copies.
 */
import { emits, matchesFilters, S3_OBJECT_CREATED_PREFIX, serviceNames, UPLOAD_PREFIX, type Filter, type ServiceName } from '@avatar-pipeline/kit';
import { ofKind, type K8sObject } from './manifests.js';

export const KSVC = ['serving.knative.dev/v1', 'Service'] as const;

export interface Destination {
  ref?: { apiVersion: string; kind: string; name: string };
  uri?: string;
  audience?: string;
}
interface TriggerObject extends K8sObject {
  spec: {
    broker: string;
    filters?: Filter[];
    subscriber: Destination;
    delivery?: { deadLetterSink?: Destination };
  };
}
interface Container {
  name: string;
  image: string;
  readinessProbe?: { httpGet?: { path?: string } };
  livenessProbe?: { httpGet?: { path?: string } };
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
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  volumes?: { name: string; emptyDir?: unknown }[];
  serviceAccountName?: string;
}
export interface KnativeServiceObject extends K8sObject {
  spec: { template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec & { containerConcurrency?: number } } };
}

export const knativeServices = (objects: readonly K8sObject[]) => ofKind(objects, ...KSVC) as KnativeServiceObject[];
export const triggersOf = (objects: readonly K8sObject[]) => ofKind(objects, 'eventing.knative.dev/v1', 'Trigger') as TriggerObject[];

/** Does a destination point at an object of the chart? */
function resolves(destination: Destination | undefined, objects: readonly K8sObject[]): boolean {
  const ref = destination?.ref;
  if (!ref) return false;
  return objects.some((o) => o.apiVersion === ref.apiVersion && o.kind === ref.kind && o.metadata.name === ref.name);
}

/** Every Trigger's broker, subscriber and dead-letter sink exist; every Broker's sink too. */
export function destinationProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const brokers = new Set(ofKind(objects, 'eventing.knative.dev/v1', 'Broker').map((b) => b.metadata.name));
  for (const trigger of triggersOf(objects)) {
    const name = `Trigger ${trigger.metadata.name}`;
    if (!brokers.has(trigger.spec.broker)) problems.push(`${name}: broker ${trigger.spec.broker} does not exist`);
    if (!resolves(trigger.spec.subscriber, objects)) problems.push(`${name}: subscriber ${trigger.spec.subscriber.ref?.name ?? '(none)'} does not exist`);
    if (!trigger.spec.subscriber.uri?.startsWith('/')) problems.push(`${name}: subscriber has no path`);
    const sink = trigger.spec.delivery?.deadLetterSink;
    if (!resolves(sink, objects)) problems.push(`${name}: dead-letter sink ${sink?.ref?.name ?? '(none)'} does not exist`);
  }
  for (const broker of ofKind(objects, 'eventing.knative.dev/v1', 'Broker') as (K8sObject & { spec: { delivery?: { deadLetterSink?: Destination } } })[]) {
    if (!resolves(broker.spec.delivery?.deadLetterSink, objects)) problems.push(`Broker ${broker.metadata.name}: dead-letter sink does not exist`);
  }
  for (const binding of ofKind(objects, 'sources.knative.dev/v1', 'SinkBinding') as (K8sObject & { spec: { subject: Destination['ref']; sink: Destination } })[]) {
    const subject = binding.spec.subject;
    if (!objects.some((o) => o.apiVersion === subject?.apiVersion && o.kind === subject?.kind && o.metadata.name === subject?.name)) {
      problems.push(`SinkBinding ${binding.metadata.name}: subject ${subject?.name ?? '(none)'} does not exist`);
    }
    if (!resolves(binding.spec.sink, objects)) problems.push(`SinkBinding ${binding.metadata.name}: sink does not exist`);
  }
  return problems;
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

/** Every event type a service emits (kit `emits`) reaches at least one Trigger of the chart. */
export function consumerProblems(objects: readonly K8sObject[], emitted: Readonly<Record<ServiceName, readonly string[]>> = emits): string[] {
  const triggers = triggersOf(objects);
  const problems: string[] = [];
  for (const service of serviceNames) {
    for (const type of emitted[service]) {
      if (!triggers.some((t) => triggerAccepts(t, sampleEvent(type)))) problems.push(`${service} emits ${type}, which no Trigger consumes`);
    }
  }
  return problems;
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

/** Pod templates of every workload in the chart, by a readable name. */
export function podTemplates(objects: readonly K8sObject[]): { where: string; spec: PodSpec }[] {
  return objects.flatMap((o) => {
    const template = (o as { spec?: { template?: { spec?: PodSpec } } }).spec?.template?.spec;
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

/** The S3 notification types s3-source can emit. */
export const s3CreatedType = `${S3_OBJECT_CREATED_PREFIX}*`;
