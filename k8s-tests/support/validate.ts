/**
 * Validates one synthesized object in three layers:
 * 1. its kubernetes-models / @kubernetes-models validator (types, required fields), minus the
 *    allowances below where those validators reject what the API server accepts;
 * 2. strictness they lack: unknown fields and enumerations (core objects against the
 *    @kubernetes/client-node models, custom resources against our strict schemas);
 * 3. Knative's own pod template rules (its field masks) for Knative Services.
 */
import type { Model } from '@kubernetes-models/base';
import { Broker } from '@kubernetes-models/knative/eventing.knative.dev/v1/Broker';
import { Trigger } from '@kubernetes-models/knative/eventing.knative.dev/v1/Trigger';
import { Service as KnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { SinkBinding } from '@kubernetes-models/knative/sources.knative.dev/v1/SinkBinding';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { PodSpec } from 'kubernetes-models/v1/PodSpec';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { customSchemas, knativePodProblems } from './crd-schemas.js';
import type { K8sObject } from './manifests.js';
import { checkCoreObject } from './strict.js';

type ModelConstructor = new (data: never) => Model<unknown>;

const models: Readonly<Record<string, ModelConstructor>> = {
  'v1 Namespace': Namespace,
  'v1 ConfigMap': ConfigMap,
  'v1 Secret': Secret,
  'v1 Service': Service,
  'v1 ServiceAccount': ServiceAccount,
  'v1 PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1 Deployment': Deployment,
  'batch/v1 Job': Job,
  'networking.k8s.io/v1 Ingress': Ingress,
  'rbac.authorization.k8s.io/v1 Role': Role,
  'rbac.authorization.k8s.io/v1 RoleBinding': RoleBinding,
  'serving.knative.dev/v1 Service': KnativeService,
  'eventing.knative.dev/v1 Broker': Broker,
  'eventing.knative.dev/v1 Trigger': Trigger,
  'sources.knative.dev/v1 SinkBinding': SinkBinding,
  'monitoring.coreos.com/v1 PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1 PrometheusRule': PrometheusRule,
};

interface ModelError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * The Knative model checks little inside the pod template, so a Knative Service's template is
 * also validated as a core PodSpec. That schema is wrong for Knative in two places, allowed here:
 * Knative fills in a probe's port (the serving port: Knative's docs write probes without one)
 * and the container's name (`user-container`).
 */
const knativePodSpecAllowances: readonly { why: string; matches: (e: ModelError) => boolean }[] = [
  {
    why: 'Knative defaults a probe port to the serving port',
    matches: (e) => e.keyword === 'required' && e.params['missingProperty'] === 'port' && /\/(readiness|liveness|startup)Probe\/(httpGet|tcpSocket)$/.test(e.instancePath),
  },
  {
    why: 'Knative names an unnamed container user-container',
    matches: (e) => e.keyword === 'required' && e.params['missingProperty'] === 'name' && /^\/containers\/\d+$/.test(e.instancePath),
  },
];

export const kindKey = (o: { apiVersion: string; kind: string }) => `${o.apiVersion} ${o.kind}`;

/** Runs a model's validator; returns its errors (none when valid). */
function modelErrors(Ctor: ModelConstructor, data: unknown): ModelError[] {
  try {
    new Ctor(data as never).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: ModelError[] }).errors;
    return errors && errors.length > 0 ? errors : [{ instancePath: '', keyword: 'error', params: {}, message: (err as Error).message }];
  }
}

const describe = (prefix: string) => (e: ModelError) => `${prefix}${e.instancePath || '/'}: ${e.message ?? e.keyword}`;

export function modelProblems(object: K8sObject): string[] {
  const key = kindKey(object);
  const Ctor = models[key];
  if (!Ctor) return [`no kubernetes-models validator for ${key}`];
  const problems = modelErrors(Ctor, object).map(describe(''));
  if (key === 'serving.knative.dev/v1 Service') {
    const podSpec = (object as { spec?: { template?: { spec?: unknown } } }).spec?.template?.spec;
    problems.push(
      ...modelErrors(PodSpec, podSpec)
        .filter((e) => !knativePodSpecAllowances.some((a) => a.matches(e)))
        .map(describe('/spec/template/spec')),
    );
  }
  return problems;
}

export function strictProblems(object: K8sObject): string[] {
  const key = kindKey(object);
  const schema = customSchemas[key];
  if (!schema) return checkCoreObject(object).map((p) => `${p.path}: ${p.message}`);
  const result = schema.safeParse(object);
  const problems = result.success ? [] : result.error.issues.map((i) => `/${i.path.join('/')}: ${i.message}`);
  if (key === 'serving.knative.dev/v1 Service' && result.success) {
    const spec = (object as unknown as { spec: { template: { spec: Parameters<typeof knativePodProblems>[0] } } }).spec.template.spec;
    problems.push(...knativePodProblems(spec).map((p) => `${p.path}: ${p.message}`));
  }
  return problems;
}

/** Every problem with one object, each prefixed with the object's kind and name. */
export function validateObject(object: K8sObject): string[] {
  const where = `${object.kind} ${object.metadata?.name ?? '(unnamed)'}`;
  return [...modelProblems(object), ...strictProblems(object)].map((p) => `${where} ${p}`);
}
