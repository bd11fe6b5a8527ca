/**
 * Every object of every environment, validated against its schema (see support/validate.ts), and
 * proof that the validation can fail: deliberately broken copies must be rejected.
 */
import { describe, expect, it } from 'vitest';
import { allEnvironments, clone, ofKind, synthesize, type K8sObject } from './support/manifests.js';
import { PodSpec } from 'kubernetes-models/v1/PodSpec';
import { kindKey, modelProblems, validateObject } from './support/validate.js';

describe.each(allEnvironments().map((env) => [env.name, env] as const))('%s manifests', (_name, env) => {
  it('parse into named, namespaced objects with unique names per kind', () => {
    expect(env.objects.length).toBeGreaterThan(30);
    const keys = env.objects.map((o) => `${kindKey(o)} ${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const o of env.objects) {
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(env.config.namespace);
    }
  });

  it('are all valid against their schemas, with no unknown fields or bad enum values', () => {
    expect(env.objects.flatMap(validateObject)).toEqual([]);
  });

  it('are only of kinds the validators know', () => {
    const kinds = new Set(env.objects.map(kindKey));
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['serving.knative.dev/v1 Service', 'eventing.knative.dev/v1 Trigger']));
  });
});

/** A copy of the first object of a kind, changed by `edit`. */
function broken(apiVersion: string, kind: string, edit: (o: Record<string, any>) => void, name?: string): K8sObject {
  const objects = ofKind(synthesize('kind').objects, apiVersion, kind).filter((o) => name === undefined || o.metadata.name === name);
  const copy = clone(objects[0]) as K8sObject & Record<string, any>;
  if (!copy) throw new Error(`no ${kind} ${name ?? ''}`);
  edit(copy);
  return copy;
}

describe('the validation rejects', () => {
  const cases: [string, K8sObject, RegExp][] = [
    ['a missing required field (Deployment selector)', broken('apps/v1', 'Deployment', (o) => delete o.spec.selector), /must have required property 'selector'|selector/],
    ['a wrong type', broken('serving.knative.dev/v1', 'Service', (o) => (o.spec.template.spec.containerConcurrency = '2')), /containerConcurrency/],
    ['an unknown field in a core object', broken('apps/v1', 'Deployment', (o) => (o.spec.template.spec.containers[0].imagePullPolicyy = 'Always')), /unknown field "imagePullPolicyy"/],
    ['a bad enum value in a core object', broken('apps/v1', 'Deployment', (o) => (o.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes')), /"Sometimes" is not one of/],
    ['a bad Service type', broken('v1', 'Service', (o) => (o.spec.type = 'Public')), /"Public" is not one of/],
    ['an unknown field in a Trigger', broken('eventing.knative.dev/v1', 'Trigger', (o) => (o.spec.filtres = o.spec.filters)), /filtres/],
    ['a Trigger filter with two dialects', broken('eventing.knative.dev/v1', 'Trigger', (o) => (o.spec.filters = [{ exact: { type: 'a' }, prefix: { subject: 'b' } }])), /exactly one dialect/],
    ['a bad backoff policy', broken('eventing.knative.dev/v1', 'Trigger', (o) => (o.spec.delivery.backoffPolicy = 'fibonacci')), /backoffPolicy/],
    ['a delay that is not ISO 8601', broken('eventing.knative.dev/v1', 'Trigger', (o) => (o.spec.delivery.backoffDelay = '500ms')), /ISO 8601/],
    ['a container field Knative refuses', broken('serving.knative.dev/v1', 'Service', (o) => (o.spec.template.spec.containers[0].lifecycle = { preStop: { exec: { command: ['true'] } } })), /Knative does not accept container field "lifecycle"/],
    ['a second container port', broken('serving.knative.dev/v1', 'Service', (o) => o.spec.template.spec.containers[0].ports.push({ name: 'http1', containerPort: 9090 })), /one container port/],
    ['a probe on another port', broken('serving.knative.dev/v1', 'Service', (o) => (o.spec.template.spec.containers[0].livenessProbe.httpGet.port = 9090)), /serving port/],
    ['a privileged Knative container', broken('serving.knative.dev/v1', 'Service', (o) => (o.spec.template.spec.containers[0].securityContext.privileged = true)), /securityContext.privileged/],
    ['a hostPath volume in a Knative Service', broken('serving.knative.dev/v1', 'Service', (o) => o.spec.template.spec.volumes.push({ name: 'host', hostPath: { path: '/' } })), /hostPath volumes/],
    ['a pod field Knative refuses', broken('serving.knative.dev/v1', 'Service', (o) => (o.spec.template.spec.hostNetwork = true)), /hostNetwork/],
    ['a visibility Knative does not know', broken('serving.knative.dev/v1', 'Service', (o) => (o.metadata.labels['networking.knative.dev/visibility'] = 'internal')), /visibility/],
    ['an unknown PodMonitor field', broken('monitoring.coreos.com/v1', 'PodMonitor', (o) => (o.spec.podMetricsEndpoints[0].intervall = '30s')), /intervall/],
    ['a bad scrape interval', broken('monitoring.coreos.com/v1', 'PodMonitor', (o) => (o.spec.podMetricsEndpoints[0].interval = '30 seconds')), /interval/],
    ['an alert without a severity', broken('monitoring.coreos.com/v1', 'PrometheusRule', (o) => delete o.spec.groups[1].rules[0].labels.severity), /severity/],
  ];

  it.each(cases)('%s', (_label, object, message) => {
    const problems = validateObject(object);
    expect(problems.join('\n')).toMatch(message);
  });
});

describe('the allowances', () => {
  it('accept Knative probes without a port, which the core PodSpec schema requires', () => {
    const [ksvc] = ofKind(synthesize('kind').objects, 'serving.knative.dev/v1', 'Service') as (K8sObject & { spec: { template: { spec: object } } })[];
    expect(() => new PodSpec(ksvc?.spec.template.spec as never).validate()).toThrow(/required property port/);
    expect(ksvc && modelProblems(ksvc)).toEqual([]);
  });
});
