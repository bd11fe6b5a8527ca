/**
 * Invariants across the objects of each environment, as the real helm renders the chart with the
 * environment's values file, and against the services' own code.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiRoutes } from '@avatar-pipeline/kit/api-routes';
import { eventAuthFromConfig } from '@avatar-pipeline/kit/auth';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { playerAuthSettings, type AuthConfig } from '@avatar-pipeline/kit/player-auth-config';
import { TTL_ATTRIBUTE } from '@avatar-pipeline/kit/table';
import { deadLetterSink, deliveryPolicies, durationMs, emits, EventType, eventAudience, eventConsumers, publicServices, serviceNames, sinkBound as kitSinkBound, triggers, UPLOAD_PREFIX, type RetryPolicy, type ServiceName } from '@avatar-pipeline/kit/topology';
import { vapidEnv } from '@avatar-pipeline/webpush';
import { BROKER_NAME, DEAD_LETTER_BROKER, DEAD_LETTER_TRIGGER, SHARED_CONFIG, VISIBILITY_LABEL, WEBHOOK_SECRET } from '@avatar-pipeline/cdk8s';
import { rendered, renderedEnvironments } from './support/helm.js';
import {
  brokersOf,
  consumerProblems,
  deployments,
  destinationProblems,
  knativeServiceProblems,
  knativeServices,
  podTemplates,
  rbacSubjectProblems,
  restrictedProblems,
  serviceContainer,
  serviceDeploymentProblems,
  serviceWorkload,
  triggersOf,
  type Container,
  type Destination,
  type PodSpec,
} from './support/invariants.js';
import { clone, ofKind, valueAt, type K8sObject } from './support/manifests.js';
import { serviceConfig } from './support/service-env.js';
import { reconcileEnv, timeoutWarnings } from '../services/profile/src/reconcile-config.js';

const environments = (await renderedEnvironments()).map((env) => [env.name, env] as const);
const kindEnv = await rendered('kind');
const eksEnv = await rendered('eks');

const APP_NAME = 'app.kubernetes.io/name';
const BROKER_REF = { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker' } as const;
const KSVC_REF = { apiVersion: 'serving.knative.dev/v1', kind: 'Service' } as const;
/** Where the kubelet mounts the service account token and the cluster CA. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The data of a ConfigMap or Secret of the chart (Secrets carry stringData). */
function dataOf(objects: readonly K8sObject[], kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> | undefined {
  const object = ofKind(objects, 'v1', kind).find((o) => o.metadata.name === name) as (K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> }) | undefined;
  return object && { ...object.data, ...object.stringData };
}

/** The environment a container starts with, as Kubernetes assembles it (optional references may be absent). */
function containerEnvironment(objects: readonly K8sObject[], container: Pick<Container, 'env' | 'envFrom'> | undefined, extra: Record<string, string> = {}) {
  const vars: Record<string, string> = {};
  const missing: string[] = [];
  for (const from of container?.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const data = dataOf(objects, from.configMapRef ? 'ConfigMap' : 'Secret', ref?.name ?? '');
    if (data) Object.assign(vars, data);
    else if (!ref?.optional) missing.push(`envFrom ${ref?.name ?? '(none)'}`);
  }
  for (const v of container?.env ?? []) {
    const ref = v.valueFrom?.secretKeyRef ?? v.valueFrom?.configMapKeyRef;
    if (!ref) vars[v.name] = v.value ?? '';
    else {
      const value = dataOf(objects, v.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name)?.[ref.key];
      if (value !== undefined) vars[v.name] = value;
      else if (!ref.optional) missing.push(`${v.name} from ${ref.name}/${ref.key}`);
    }
  }
  return { vars: { ...vars, ...extra }, missing };
}

type SinkBindingObject = K8sObject & { spec: { subject: { apiVersion: string; kind: string; name: string }; sink: Destination } };
const sinkBindings = (objects: readonly K8sObject[]) => ofKind(objects, 'sources.knative.dev/v1', 'SinkBinding') as SinkBindingObject[];

/** The SinkBinding whose subject is the service's workload (its Knative Service, or its Deployment). */
function sinkBindingOf(objects: readonly K8sObject[], service: string): SinkBindingObject | undefined {
  const workload = serviceWorkload(objects, service);
  return sinkBindings(objects).find((b) => workload && b.spec.subject.apiVersion === workload.apiVersion && b.spec.subject.kind === workload.kind && b.spec.subject.name === service);
}

/** What the platform adds: Knative Serving PORT (Knative Services only), a SinkBinding K_SINK (the broker's address). */
function platformAdds(objects: readonly K8sObject[], namespace: string, service: string): Record<string, string> {
  const binding = sinkBindingOf(objects, service);
  return {
    ...(serviceWorkload(objects, service)?.kind === 'Service' ? { PORT: '8080' } : {}),
    ...(binding ? { K_SINK: `http://broker-ingress.knative-eventing.svc.cluster.local/${namespace}/${binding.spec.sink.ref?.name ?? ''}` } : {}),
  };
}

/** Jobs by their `app.kubernetes.io/name`: their names are `<prefix>-<hash of their spec>`. */
const jobsNamed = (objects: readonly K8sObject[], name: string) =>
  (ofKind(objects, 'batch/v1', 'Job') as (K8sObject & { spec: { template: { spec: PodSpec } } })[]).filter((j) => j.metadata.labels?.[APP_NAME] === name);

/** Variables read by the runtime rather than by a service's config schema. */
const runtimeVariables = new Set(['MALLOC_ARENA_MAX', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'NODE_EXTRA_CA_CERTS']);

const retryOf = ({ retry, backoffPolicy, backoffDelay, timeout }: RetryPolicy) => ({ retry, backoffPolicy, backoffDelay, timeout });
const toDeadLetterBroker = { ref: { ...BROKER_REF, name: DEAD_LETTER_BROKER } };

/** The gateway's nginx `location` blocks: modifier, path and body (quoted text, which may hold braces, is skipped when matching them). */
function nginxLocations(conf: string): { match: string; path: string; body: string }[] {
  const found: { match: string; path: string; body: string }[] = [];
  const lines = conf.split('\n');
  const braces = (line: string) => {
    const bare = line.replace(/'[^']*'|"[^"]*"/g, '');
    return (bare.match(/\{/g)?.length ?? 0) - (bare.match(/\}/g)?.length ?? 0);
  };
  for (let i = 0; i < lines.length; i++) {
    const head = /^\s*location\s+(?:(=|\^~|~\*?)\s+)?(\S+)\s*\{/.exec(lines[i]!);
    if (!head) continue;
    let depth = braces(lines[i]!);
    const body = [lines[i]!];
    while (depth > 0 && i + 1 < lines.length) {
      body.push(lines[++i]!);
      depth += braces(lines[i]!);
    }
    found.push({ match: head[1] ?? '', path: head[2]!, body: body.join('\n') });
  }
  return found;
}

describe.each(environments)('%s', (_name, env) => {
  const ns = env.namespace;
  const value = (...path: string[]) => valueAt(env.values, ...path);
  const polls = value('s3Source', 'mode') === 'sqs';
  const ksvcs = knativeServices(env.objects);
  const ksvc = (name: string) => ksvcs.find((k) => k.metadata.name === name);
  const container = (name: string) => serviceContainer(env.objects, name);

  // A second object of the same kind and name would silently replace the first on apply.
  it('has unique names per kind, and every object in the release namespace (no Namespace of its own)', () => {
    const keys = env.objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    expect(env.objects.filter((o) => o.kind === 'Namespace')).toEqual([]);
    for (const o of env.objects) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns);
  });

  it('runs each service as a Knative Service with probes, limits, a non-root security context and autoscaling bounds, but s3-source as a Deployment when it polls SQS', () => {
    const expected = serviceNames.filter((n) => !(polls && n === 's3-source'));
    expect(ksvcs.map((k) => k.metadata.name).sort()).toEqual([...expected].sort());
    const serviceDeployments = deployments(env.objects).filter((d) => (serviceNames as readonly string[]).includes(d.metadata.name));
    expect(serviceDeployments.map((d) => d.metadata.name)).toEqual(polls ? ['s3-source'] : []);
    expect(knativeServiceProblems(env.objects)).toEqual([]);
    expect(serviceDeploymentProblems(env.objects)).toEqual([]);
  });

  it('runs every pod under the restricted Pod Security Standard, with requests and a memory limit', () => {
    const templates = podTemplates(env.objects);
    const where = templates.map((t) => t.where);
    for (const name of serviceNames) expect(where, name).toContain(`${serviceWorkload(env.objects, name)?.kind ?? '(none)'} ${name}`);
    expect(where).toContain('Deployment gateway');
    expect(where.filter((w) => /^Job vapid-init-[0-9a-f]{10}$/.test(w))).toHaveLength(1);
    expect(where).toContain('CronJob reconciler');
    expect(templates.flatMap((t) => restrictedProblems(t.where, t.spec))).toEqual([]);
  });

  it('scales every Knative Service to zero, with the bounds, concurrency and resources its values set', () => {
    for (const k of ksvcs) {
      const name = k.metadata.name;
      const own = value('services', name) as { minScale: number; maxScale: number; target: number; containerConcurrency: number; resources: unknown };
      const annotations = k.spec.template.metadata.annotations ?? {};
      expect(annotations['autoscaling.knative.dev/min-scale'], name).toBe('0');
      expect(
        {
          min: annotations['autoscaling.knative.dev/min-scale'],
          max: annotations['autoscaling.knative.dev/max-scale'],
          target: annotations['autoscaling.knative.dev/target'],
          concurrency: k.spec.template.spec.containerConcurrency,
        },
        name,
      ).toEqual({ min: String(own.minScale), max: String(own.maxScale), target: String(own.target), concurrency: own.containerConcurrency });
      expect(k.spec.template.spec.containers[0]?.resources, name).toEqual(own.resources);
    }
  });

  it('takes few concurrent requests per pod for image work and many for the HTTP APIs', () => {
    const concurrency = (name: ServiceName) => ksvc(name)?.spec.template.spec.containerConcurrency ?? 0;
    for (const name of ['moderate', 'thumbnail'] as const) expect(concurrency(name)).toBeLessThanOrEqual(4);
    for (const name of publicServices) expect(concurrency(name)).toBeGreaterThanOrEqual(20);
  });

  it('creates one Trigger per topology entry, dead-lettering to the dead-letter Broker, and one from there to the topology’s dead-letter sink', () => {
    const objects = triggersOf(env.objects);
    const audience = (service: ServiceName) => eventAudience(ns, service);
    expect(objects.map((t) => t.metadata.name).sort()).toEqual([...triggers.map((t) => t.name), DEAD_LETTER_TRIGGER].sort());
    for (const topology of triggers) {
      const trigger = objects.find((t) => t.metadata.name === topology.name);
      expect(trigger?.spec).toEqual({
        broker: BROKER_NAME,
        filters: topology.filters,
        subscriber: { ref: { ...KSVC_REF, name: topology.subscriber.service }, uri: topology.subscriber.path, audience: audience(topology.subscriber.service) },
        delivery: { ...retryOf(topology.delivery), deadLetterSink: toDeadLetterBroker },
      });
      // What the dead-letter Broker's Trigger delivers to must be the topology's own dead-letter sink.
      expect(topology.delivery.deadLetter, topology.name).toEqual(deadLetterSink);
    }
    const deadLetters = objects.find((t) => t.metadata.name === DEAD_LETTER_TRIGGER);
    expect(deadLetters?.spec).toEqual({
      broker: DEAD_LETTER_BROKER,
      subscriber: { ref: { ...KSVC_REF, name: deadLetterSink.service }, uri: deadLetterSink.path, audience: audience(deadLetterSink.service) },
      delivery: retryOf(deliveryPolicies.deadLetters),
    });
  });

  it('runs the dead-letter Broker beside the main one, of the same class and config, with the values’ broker config in their ConfigMap', () => {
    const brokers = brokersOf(env.objects) as (K8sObject & { spec: { config?: unknown; delivery?: unknown } })[];
    expect(brokers.map((b) => b.metadata.name).sort()).toEqual([BROKER_NAME, DEAD_LETTER_BROKER].sort());
    const config = { apiVersion: 'v1', kind: 'ConfigMap', name: 'avatar-pipeline-broker', namespace: ns };
    for (const broker of brokers) {
      expect(broker.metadata.annotations?.['eventing.knative.dev/broker.class'], broker.metadata.name).toBe(value('broker', 'class'));
      expect(broker.spec.config, broker.metadata.name).toEqual(config);
    }
    // The default for Triggers that set no delivery of their own; the dead-letter Broker is the end of the line.
    expect(brokers.find((b) => b.metadata.name === BROKER_NAME)?.spec.delivery).toEqual({ ...retryOf(deliveryPolicies.processing), deadLetterSink: toDeadLetterBroker });
    expect(brokers.find((b) => b.metadata.name === DEAD_LETTER_BROKER)?.spec.delivery).toBeUndefined();
    expect(dataOf(env.objects, 'ConfigMap', config.name)).toEqual(value('broker', 'config'));
  });

  // Serving sets no audience on a Knative Service: without one on the Trigger, Knative sends no token.
  it('names an OIDC audience on every delivery to a service, and has each event endpoint expect exactly its own', () => {
    const isService = (d: Destination | undefined): d is Destination => d?.ref?.apiVersion === KSVC_REF.apiVersion && d.ref.kind === KSVC_REF.kind;
    const destinations = [
      ...triggersOf(env.objects).flatMap((t) => [t.spec.subscriber, t.spec.delivery?.deadLetterSink]),
      ...brokersOf(env.objects).map((b) => b.spec.delivery?.deadLetterSink),
    ].filter(isService);
    expect(new Set(destinations.map((d) => d.ref?.name))).toEqual(eventConsumers);
    const silent = createLogger('invariants', 'silent');
    const fromApi = value('eventsOidc', 'fromKubernetesApi') === true;
    for (const name of eventConsumers) {
      const named = new Set(destinations.filter((d) => d.ref?.name === name).map((d) => d.audience));
      expect([...named], name).toEqual([eventAudience(ns, name)]);
      const own = serviceConfig(name);
      const { vars } = containerEnvironment(env.objects, container(name), platformAdds(env.objects, ns, name));
      const config = own.load(vars) as Parameters<typeof eventAuthFromConfig>[0] & { EVENTS_OIDC_JWKS_TOKEN_FILE?: string };
      expect(eventAuthFromConfig(config, silent), name).toMatchObject({ issuer: value('eventsOidc', 'issuer'), audience: [...named] });
      // The Kubernetes API's JWKS takes the pod's own token (an empty variable is unset: EKS's keys are public).
      expect(config.EVENTS_OIDC_JWKS_TOKEN_FILE, name).toBe(fromApi ? `${SERVICE_ACCOUNT_DIR}/token` : undefined);
      expect(vars['NODE_EXTRA_CA_CERTS'] || undefined, name).toBe(fromApi ? `${SERVICE_ACCOUNT_DIR}/ca.crt` : undefined);
    }
  });

  it('gives every public API player-token settings it accepts: the values’ issuer with its keys, and their client ids', () => {
    const jwksUrl = (value('auth', 'jwksUrl') as string) || `http://dev-issuer.${ns}.svc.cluster.local/.well-known/jwks.json`;
    const verifying: string[] = [];
    for (const name of serviceNames) {
      const own = serviceConfig(name);
      if (!('JWT_ISSUERS' in own.shape)) continue;
      verifying.push(name);
      const { vars } = containerEnvironment(env.objects, container(name), platformAdds(env.objects, ns, name));
      const settings = playerAuthSettings(own.load(vars) as AuthConfig);
      expect(settings.issuers, name).toEqual([{ issuer: value('auth', 'issuer'), jwksUrl }]);
      expect(settings.clientIds, name).toEqual(value('auth', 'clientIds'));
    }
    expect(verifying).toEqual([...publicServices]);
  });

  it('sends the broker the token a SinkBinding mounts from the services that post to it', () => {
    const bound = serviceNames.filter((n) => sinkBindingOf(env.objects, n));
    expect(bound.length).toBeGreaterThan(0);
    for (const name of bound) expect(container(name)?.env?.find((v) => v.name === 'K_SINK_OIDC_TOKEN_FILE')?.value, name).toBe('/oidc/token');
  });

  it('lets every subscriber take a delivery for as long as its Trigger waits', () => {
    for (const trigger of triggersOf(env.objects)) {
      const timeout = trigger.spec.delivery?.timeout;
      expect(timeout, trigger.metadata.name).toBeDefined();
      const seconds = ksvc(trigger.spec.subscriber.ref?.name ?? '')?.spec.template.spec.timeoutSeconds ?? 0;
      expect(seconds, trigger.metadata.name).toBeGreaterThanOrEqual(durationMs(timeout ?? 'PT0S') / 1000);
    }
  });

  it("resolves every Trigger's broker, subscriber and dead-letter sink, every Broker's, and every SinkBinding", () => {
    expect(destinationProblems(env.objects)).toEqual([]);
  });

  it('has a consumer for every event type a service emits, and for its dead letters on the dead-letter Broker', () => {
    expect(consumerProblems(env.objects)).toEqual([]);
  });

  it('binds exactly the services that need K_SINK to the broker, through their workload', () => {
    for (const name of serviceNames) {
      const own = serviceConfig(name);
      const sink = own.shape['K_SINK'];
      const needsSink = sink !== undefined && !z.safeParse(sink, undefined).success;
      const binding = sinkBindingOf(env.objects, name);
      expect(binding !== undefined, name).toBe(needsSink);
      expect(kitSinkBound.has(name), name).toBe(needsSink);
      if (binding) expect(binding.spec.sink, name).toEqual({ ref: { ...BROKER_REF, name: BROKER_NAME } });
    }
    // Every SinkBinding is one of those, or the reconciler's (a stale one would inject K_SINK into nothing, or into the wrong pods).
    const reconciler = value('reconciler', 'enabled') === true ? 1 : 0;
    expect(sinkBindings(env.objects).length).toBe(serviceNames.filter((n) => sinkBindingOf(env.objects, n)).length + reconciler);
  });

  it.each(serviceNames.map((s) => [s]))('gives %s a configuration its own loadConfig accepts, and only variables it reads', (name) => {
    const own = serviceConfig(name);
    const { vars, missing } = containerEnvironment(env.objects, container(name), platformAdds(env.objects, ns, name));
    expect(missing).toEqual([]);
    const loaded = own.load(vars) as Record<string, unknown> & { config?: Record<string, unknown>; mode?: { input: string } };
    // s3-source takes exactly one input: the one its values choose.
    if (name === 's3-source') expect(loaded.mode?.input).toBe(value('s3Source', 'mode'));
    // What does not apply is an empty variable, which the service takes as unset (its default, or none).
    const config = name === 's3-source' ? (loaded.config ?? {}) : loaded;
    for (const v of Object.keys(vars).filter((k) => vars[k] === '' && k in own.shape)) {
      const unset = z.object({ [v]: own.shape[v]! }).safeParse({});
      expect(unset.success, `${v} may be left unset`).toBe(true);
      expect(config[v], `${v}=''`).toEqual(unset.data?.[v]);
    }
    const names = (container(name)?.env ?? []).map((v) => v.name);
    expect(names.filter((v) => !(v in own.shape) && !runtimeVariables.has(v))).toEqual([]);
  });

  it('gives the VAPID init Job a configuration the vapid package accepts, named after its spec', () => {
    const [job, ...others] = jobsNamed(env.objects, 'vapid-init');
    expect(others).toEqual([]);
    expect(job?.metadata.name).toMatch(/^vapid-init-[0-9a-f]{10}$/);
    const pod = job?.spec.template.spec;
    const [init] = pod?.containers ?? [];
    expect(init?.command).toEqual(['node', 'packages/webpush/dist/init.js']);
    // The push image holds the vapid package (and takes the same tag).
    expect(init?.image).toBe(container('push')?.image);
    const { vars, missing } = containerEnvironment(env.objects, init);
    expect(missing).toEqual([]);
    expect(loadConfig(vapidEnv, vars).VAPID_STORE).toBe(value('vapid', 'store'));
    expect(pod?.serviceAccountName).toBe('vapid-init');
    expect(pod?.automountServiceAccountToken).toBe(value('vapid', 'store') === 'k8s-secret');
  });

  it("runs the reconciler as a CronJob of profile's image, one run at a time, bound to the broker, with a configuration it accepts", () => {
    const cronJobs = ofKind(env.objects, 'batch/v1', 'CronJob') as (K8sObject & {
      spec: { schedule: string; concurrencyPolicy: string; jobTemplate: { metadata: { labels: Record<string, string> }; spec: { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } } };
    })[];
    expect(cronJobs.map((c) => c.metadata.name)).toEqual(['reconciler']);
    const [cron] = cronJobs;
    expect(cron?.spec.schedule).toBe(value('reconciler', 'schedule'));
    expect(cron?.spec.concurrencyPolicy).toBe('Forbid');
    const pod = cron?.spec.jobTemplate.spec.template;
    expect(pod?.metadata.labels).toMatchObject({ [APP_NAME]: 'reconciler' });
    expect(pod?.spec.serviceAccountName).toBe('reconciler');
    expect(pod?.spec.automountServiceAccountToken).toBe(false);
    const [container, ...others] = pod?.spec.containers ?? [];
    expect(others).toEqual([]);
    expect(container?.command).toEqual(['node', 'services/profile/dist/reconcile-main.js']);
    expect(container?.image).toBe(serviceContainer(env.objects, 'profile')?.image);
    // Knative's CronJob pattern: the SinkBinding selects the Jobs by the labels the jobTemplate gives them.
    const binding = sinkBindings(env.objects).find((b) => b.metadata.name === 'reconciler-to-broker') as (K8sObject & { spec: { subject: unknown; sink: Destination } }) | undefined;
    expect(binding?.spec.subject).toEqual({ apiVersion: 'batch/v1', kind: 'Job', selector: { matchLabels: cron?.spec.jobTemplate.metadata.labels } });
    expect(binding?.spec.sink).toEqual({ ref: { ...BROKER_REF, name: BROKER_NAME } });
    const { vars, missing } = containerEnvironment(env.objects, container, { K_SINK: `http://broker-ingress.knative-eventing.svc.cluster.local/${ns}/${BROKER_NAME}` });
    expect(missing).toEqual([]);
    const config = loadConfig(reconcileEnv, vars);
    expect(config).toMatchObject({
      TABLE_NAME: value('aws', 'table'),
      BUCKET: value('aws', 'bucket'),
      K_SINK_OIDC_TOKEN_FILE: '/oidc/token',
      UPLOAD_PENDING_TIMEOUT_SECONDS: value('reconciler', 'pendingTimeoutSeconds'),
      UPLOAD_PROCESSING_TIMEOUT_SECONDS: value('reconciler', 'processingTimeoutSeconds'),
    });
    // Its own variables are all the reconciler's; the timeouts outlast the pipeline's own budgets.
    expect((container?.env ?? []).map((v) => v.name).filter((v) => !(v in reconcileEnv))).toEqual([]);
    expect(timeoutWarnings(config)).toEqual([]);
  });

  it('rolls every workload that takes the shared configuration when it changes', () => {
    // A CronJob's pods start afresh at every run, reading the ConfigMap as it is then: nothing to roll.
    const consumers = podTemplates(env.objects).filter(
      (t) => !t.where.startsWith('CronJob ') && t.spec.containers.some((c) => c.envFrom?.some((f) => f.configMapRef?.name === SHARED_CONFIG)),
    );
    expect(consumers.map((t) => t.where)).toEqual(expect.arrayContaining(serviceNames.map((n) => `${serviceWorkload(env.objects, n)?.kind ?? '(none)'} ${n}`)));
    const annotations = (where: string) =>
      (env.objects.find((o) => `${o.kind} ${o.metadata.name}` === where) as unknown as { spec: { template: { metadata: { annotations?: Record<string, string> } } } }).spec.template.metadata.annotations ?? {};
    // Env is read only at pod start: a changed hash in the pod template is what starts new pods.
    const hashes = new Map(consumers.map((t) => [t.where, annotations(t.where)['avatar-pipeline/config-hash']]));
    expect([...hashes].filter(([, hash]) => !/^[0-9a-f]{16}$/.test(hash ?? '')).map(([where]) => `${where} has no avatar-pipeline/config-hash`)).toEqual([]);
    expect(new Set(hashes.values()).size).toBe(1);
  });

  it('gives each workload its own service account, with an API token only where it reads the API', () => {
    const accounts = ofKind(env.objects, 'v1', 'ServiceAccount') as (K8sObject & { automountServiceAccountToken?: boolean })[];
    expect(accounts.map((a) => a.metadata.name).sort()).toEqual([...serviceNames, 'vapid-init', 'reconciler'].sort());
    for (const name of serviceNames) expect(serviceWorkload(env.objects, name)?.spec.template.spec.serviceAccountName, name).toBe(name);
    const withToken = accounts.filter((a) => a.automountServiceAccountToken !== false).map((a) => a.metadata.name).sort();
    // On kind the VAPID Secret, and the API's own JWKS for the event endpoints (it serves it to service accounts only).
    expect(withToken).toEqual(env.name === 'kind' ? ['moderate', 'profile', 'push', 'subscribe', 'thumbnail', 'vapid-init'] : []);
    for (const account of accounts) {
      const role = value('serviceAccounts', account.metadata.name, 'roleArn');
      if (env.name === 'eks') {
        expect(role, account.metadata.name).toMatch(new RegExp(`^arn:aws:iam::\\d{12}:role/avatar-pipeline-${account.metadata.name}$`));
        expect(account.metadata.annotations, account.metadata.name).toEqual({ 'eks.amazonaws.com/role-arn': role });
      } else {
        expect(role, account.metadata.name).toBe('');
        expect(account.metadata.annotations ?? {}, account.metadata.name).toEqual({});
      }
    }
  });

  it('binds roles only to ServiceAccounts of the chart, in the namespace they live in', () => {
    expect(rbacSubjectProblems(env.objects)).toEqual([]);
  });

  it('exposes only the public API paths through the gateway, and the stand-ins and dev issuer only when they run', () => {
    expect([...new Set(apiRoutes.map((r) => r.service))].sort()).toEqual([...publicServices].sort());
    const conf = dataOf(env.objects, 'ConfigMap', 'gateway-nginx')?.['default.conf'] ?? '';
    const locations = nginxLocations(conf);
    expect(locations.length).toBeGreaterThan(apiRoutes.length);
    const at = (l: { match: string; path: string }) => `${l.match} ${l.path}`.trim();
    for (const l of locations) expect(l.path, at(l)).not.toMatch(/\/(events|dead-letter|metrics|readyz|webhook)(\/|$)/);
    const routes = locations.filter((l) => l.body.includes('proxy_pass'));
    for (const l of locations.filter((x) => !routes.includes(x))) {
      // The gateway's own answers: its health, the catch-all 404 and its internal error pages.
      expect(at(l)).toMatch(/^(= \/healthz|\/|= \/_gateway\/error\/\d{3})$/);
      if (l.path.startsWith('/_gateway/')) expect(l.body, at(l)).toContain('internal;');
    }
    for (const r of routes) expect(at(r)).toMatch(/^(= \/v1\/|\^~ \/(v1|s3|media|dev|\.well-known)\/)/);
    const upstream = (l: { body: string }) => /set \$upstream_host ([^;\s]+);/.exec(l.body)?.[1];
    const host = (service: string, port = '') => `${service}.${ns}.svc.cluster.local${port}`;
    // The API routes are exactly the kit's, each to its service.
    const api = routes.filter((r) => r.path.startsWith('/v1/'));
    expect(api.map((r) => `${at(r)} -> ${upstream(r)}`).sort()).toEqual(
      apiRoutes.map((r) => `${r.match === 'exact' ? '=' : '^~'} ${r.path} -> ${host(r.service)}`).sort(),
    );
    const prefixes = (pattern: RegExp) => routes.filter((r) => pattern.test(r.path));
    const standIns = value('standIns', 'enabled') === true;
    const devIssuer = value('devIssuer', 'enabled') === true;
    expect(prefixes(/^\/(s3|media)\//).map((r) => upstream(r))).toEqual(standIns ? [host('minio', ':9000'), host('minio', ':9000')] : []);
    expect(prefixes(/^\/(dev|\.well-known)\//).map((r) => upstream(r))).toEqual(devIssuer ? [host('dev-issuer'), host('dev-issuer')] : []);
    const expectedPrefixes = env.name === 'kind' ? ['/s3/', '/media/', '/dev/', '/.well-known/'] : [];
    expect(routes.filter((r) => !r.path.startsWith('/v1/')).map((r) => `/${r.path.split('/')[1]}/`)).toEqual(expectedPrefixes);
  });
});

describe('kind', () => {
  const env = kindEnv;
  const ns = env.namespace;

  it('wires MinIO notifications to s3-source with the token s3-source checks, queued on the volume', () => {
    const minio = ofKind(env.objects, 'apps/v1', 'Deployment').find((d) => d.metadata.name === 'minio') as unknown as {
      spec: { template: { spec: { containers: (Container & { volumeMounts: { mountPath: string; name: string }[] })[] } } };
    };
    const [container] = minio.spec.template.spec.containers;
    const { vars, missing } = containerEnvironment(env.objects, container);
    expect(missing).toEqual([]);
    expect(vars['MINIO_NOTIFY_WEBHOOK_ENDPOINT_S3SOURCE']).toBe(`http://s3-source.${ns}.svc.cluster.local/webhook`);
    const { vars: sourceVars } = containerEnvironment(env.objects, serviceContainer(env.objects, 's3-source'));
    expect(sourceVars['WEBHOOK_AUTH_TOKEN']).toBe(valueAt(env.values, 's3Source', 'webhookToken'));
    expect(vars['MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_S3SOURCE']).toBe(sourceVars['WEBHOOK_AUTH_TOKEN']);
    expect(dataOf(env.objects, 'Secret', WEBHOOK_SECRET)).toEqual({ token: valueAt(env.values, 's3Source', 'webhookToken') });
    expect(container?.volumeMounts.find((m) => m.mountPath === vars['MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_S3SOURCE'])?.name).toBe('data');
  });

  it('prepares the bucket notification for uploads, public derived avatars and the table with its TTL, where the services look', () => {
    const [job, ...others] = jobsNamed(env.objects, 'stand-ins-setup');
    expect(others).toEqual([]);
    expect(job?.metadata.name).toMatch(/^stand-ins-setup-[0-9a-f]{10}$/);
    const [setup] = job?.spec.template.spec.containers ?? [];
    expect(setup?.command).toEqual(['/bin/sh', '-c']);
    const script = setup?.args?.[0] ?? '';
    const bucket = String(valueAt(env.values, 'aws', 'bucket'));
    const table = String(valueAt(env.values, 'aws', 'table'));
    expect(script).toContain(`"Value":"${UPLOAD_PREFIX}"`);
    expect(script).toContain('arn:minio:sqs::S3SOURCE:webhook');
    expect(script).toContain(`--bucket ${bucket} `);
    expect(script).toContain(`arn:aws:s3:::${bucket}/avatars/*`);
    expect(script).toContain(`create-table --table-name ${table} `);
    expect(script).toContain(`AttributeName=${TTL_ATTRIBUTE}`);
    expect(script).toMatch(/KeyType=HASH.*KeyType=RANGE/);
    // The stand-ins it prepares are the ones the services are pointed at.
    const { vars } = containerEnvironment(env.objects, setup);
    const shared = dataOf(env.objects, 'ConfigMap', SHARED_CONFIG) ?? {};
    expect(vars['S3']).toBe(shared['AWS_ENDPOINT_URL_S3']);
    expect(vars['DYNAMODB']).toBe(shared['AWS_ENDPOINT_URL_DYNAMODB']);
    expect({ bucket: shared['BUCKET'], table: shared['TABLE_NAME'] }).toEqual({ bucket, table });
  });

  it('lets the VAPID init Job get only its Secret, and push and subscribe only read it', () => {
    const secretName = valueAt(env.values, 'vapid', 'secretName');
    const roles = ofKind(env.objects, 'rbac.authorization.k8s.io/v1', 'Role') as unknown as { metadata: { name: string }; rules: { verbs: string[]; resources: string[]; resourceNames?: string[] }[] }[];
    const init = roles.find((r) => r.metadata.name === 'vapid-init');
    expect(init?.rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ verbs: ['get'], resources: ['secrets'], resourceNames: [secretName] }),
        expect.objectContaining({ verbs: ['create'], resources: ['secrets'] }),
      ]),
    );
    expect(roles.find((r) => r.metadata.name === 'vapid-reader')?.rules).toEqual([expect.objectContaining({ verbs: ['get'], resourceNames: [secretName] })]);
    const bindings = ofKind(env.objects, 'rbac.authorization.k8s.io/v1', 'RoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string }[] }[];
    const subjects = (role: string) => bindings.filter((b) => b.roleRef.name === role).flatMap((b) => b.subjects.map((s) => s.name)).sort();
    expect(subjects('vapid-init')).toEqual(['vapid-init']);
    expect(subjects('vapid-reader')).toEqual(['push', 'subscribe']);
  });
});

describe('eks', () => {
  const env = eksEnv;
  const shared = dataOf(env.objects, 'ConfigMap', SHARED_CONFIG) ?? {};

  it('runs no stand-ins, secrets or dev issuer: AWS through IRSA, keys in SSM, Cognito tokens', () => {
    const names = env.objects.map((o) => `${o.kind} ${o.metadata.name}`);
    for (const absent of ['Deployment minio', 'Deployment dynamodb', 'Deployment dev-issuer', 'Role vapid-init', 'Role vapid-reader']) expect(names).not.toContain(absent);
    expect(jobsNamed(env.objects, 'stand-ins-setup')).toEqual([]);
    expect(ofKind(env.objects, 'rbac.authorization.k8s.io/v1', 'RoleBinding')).toEqual([]);
    expect(ofKind(env.objects, 'v1', 'Secret')).toEqual([]);
    expect(shared['JWT_JWKS_URL']).toMatch(/^https:\/\/cognito-idp\.[a-z0-9-]+\.amazonaws\.com\/.+\/\.well-known\/jwks\.json$/);
    // Empty variables are unset to the services: no endpoint overrides, and no stand-in credentials.
    expect({ s3: shared['AWS_ENDPOINT_URL_S3'], dynamodb: shared['AWS_ENDPOINT_URL_DYNAMODB'] }).toEqual({ s3: '', dynamodb: '' });
    for (const name of serviceNames) {
      const own = serviceConfig(name);
      const { vars } = containerEnvironment(env.objects, serviceContainer(env.objects, name), platformAdds(env.objects, env.namespace, name));
      expect(vars['AWS_ACCESS_KEY_ID'], name).toBeUndefined();
      const loaded = own.load(vars) as Record<string, unknown> & { config?: Record<string, unknown> };
      const config = name === 's3-source' ? (loaded.config ?? {}) : loaded;
      expect([config['AWS_ENDPOINT_URL_S3'], config['AWS_ENDPOINT_URL_DYNAMODB'], config['AWS_ENDPOINT_URL_SQS']], name).toEqual([undefined, undefined, undefined]);
    }
    for (const name of ['push', 'subscribe'] as const) {
      expect(containerEnvironment(env.objects, serviceContainer(env.objects, name)).vars['VAPID_STORE'], name).toBe('ssm');
    }
  });

  it('polls SQS from s3-source, a Deployment bound to the broker, and exposes the gateway through an ingress', () => {
    const poller = deployments(env.objects).find((d) => d.metadata.name === 's3-source');
    expect(poller?.apiVersion).toBe('apps/v1');
    expect(knativeServices(env.objects).map((k) => k.metadata.name)).not.toContain('s3-source');
    const pod = poller?.spec.template.spec as (PodSpec & { terminationGracePeriodSeconds?: number }) | undefined;
    const [source] = pod?.containers ?? [];
    expect(source?.ports).toEqual([{ name: 'user-port', containerPort: 8080 }]);
    expect((source?.env ?? []).map((v) => v.name)).toEqual(['SQS_QUEUE_URL', 'SHUTDOWN_GRACE_SECONDS', 'K_SINK_OIDC_TOKEN_FILE']);
    const { vars } = containerEnvironment(env.objects, source, platformAdds(env.objects, env.namespace, 's3-source'));
    expect(vars['SQS_QUEUE_URL']).toBe(valueAt(env.values, 'aws', 'sqsQueueUrl'));
    const own = serviceConfig('s3-source');
    const { config, mode } = own.load(vars) as { config: { PORT: number; SHUTDOWN_GRACE_SECONDS: number }; mode: { input: string; queueUrl?: string } };
    expect(mode).toEqual({ input: 'sqs', queueUrl: valueAt(env.values, 'aws', 'sqsQueueUrl') });
    // It listens (metrics, probes) on the port it names, and drains within the pod's grace period.
    expect(config.PORT).toBe(8080);
    expect(config.SHUTDOWN_GRACE_SECONDS).toBeLessThan(pod?.terminationGracePeriodSeconds ?? 30);
    // One replica without KEDA (helm.test.ts renders the KEDA variant).
    expect(valueAt(env.values, 's3Source', 'keda', 'enabled')).toBe(false);
    expect(poller?.spec.replicas).toBe(1);
    expect(dataOf(env.objects, 'Secret', WEBHOOK_SECRET)).toBeUndefined();
    expect(sinkBindingOf(env.objects, 's3-source')?.spec.subject).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 's3-source' });
    expect(ofKind(env.objects, 'networking.k8s.io/v1', 'Ingress').map((i) => i.metadata.name)).toEqual(['gateway']);
  });
});

describe('the invariant checks fail on broken copies', () => {
  const env = kindEnv;
  const eks = eksEnv;
  const isObject = (apiVersion: string, kind: string, name: string) => (o: K8sObject) => o.apiVersion === apiVersion && o.kind === kind && o.metadata.name === name;
  const trigger = (objects: any[], name: string) => objects.find(isObject('eventing.knative.dev/v1', 'Trigger', name));
  const broker = (objects: any[], name: string) => objects.find(isObject(BROKER_REF.apiVersion, BROKER_REF.kind, name));

  it('a Trigger whose subscriber does not exist', () => {
    const objects = env.objects.filter((o) => !isObject(KSVC_REF.apiVersion, KSVC_REF.kind, 'thumbnail')(o));
    expect(destinationProblems(objects)).toEqual(['Trigger thumbnail-approved: subscriber thumbnail does not exist']);
  });

  it('a dead-letter Broker that does not exist', () => {
    const objects = env.objects.filter((o) => !isObject(BROKER_REF.apiVersion, BROKER_REF.kind, DEAD_LETTER_BROKER)(o));
    expect(destinationProblems(objects).sort()).toEqual(
      [
        ...triggers.map((t) => `Trigger ${t.name}: dead-letter sink ${DEAD_LETTER_BROKER} does not exist`),
        `Broker ${BROKER_NAME}: dead-letter sink ${DEAD_LETTER_BROKER} does not exist`,
        `Trigger ${DEAD_LETTER_TRIGGER}: broker ${DEAD_LETTER_BROKER} does not exist`,
      ].sort(),
    );
  });

  it('a Trigger without a dead-letter sink only when its Broker has no default either', () => {
    const objects = clone(env.objects) as any[];
    delete trigger(objects, 'moderate-uploads').spec.delivery.deadLetterSink;
    expect(destinationProblems(objects)).toEqual([]);
    delete broker(objects, BROKER_NAME).spec.delivery;
    expect(destinationProblems(objects)).toEqual(['Trigger moderate-uploads: no dead-letter sink', `Broker ${BROKER_NAME}: no dead-letter sink`]);
  });

  it('a dead-letter loop, and a dead-letter service without a path', () => {
    const objects = clone(env.objects) as any[];
    trigger(objects, DEAD_LETTER_TRIGGER).spec.delivery.deadLetterSink = clone(toDeadLetterBroker);
    trigger(objects, 'push-ready').spec.delivery.deadLetterSink = { ref: { ...KSVC_REF, name: 'profile' } };
    expect(destinationProblems(objects).sort()).toEqual([
      `Trigger ${DEAD_LETTER_TRIGGER}: dead-letters to its own broker ${DEAD_LETTER_BROKER}`,
      `Trigger push-ready: dead-letter sink profile has no path`,
    ]);
  });

  it('a SinkBinding whose subject is not there: the poller Deployment removed', () => {
    const objects = eks.objects.filter((o) => !isObject('apps/v1', 'Deployment', 's3-source')(o));
    expect(destinationProblems(objects)).toEqual(['SinkBinding s3-source-to-broker: subject s3-source does not exist']);
  });

  it('an emitted type nobody consumes (the dead-letter Broker’s catch-all Trigger does not count)', () => {
    expect(consumerProblems(env.objects, { ...emits, thumbnail: ['avatarpipeline.avatar.resized'] })).toEqual([
      'thumbnail emits avatarpipeline.avatar.resized, which no Trigger consumes',
    ]);
    const withoutPush = env.objects.filter((o) => !(o.kind === 'Trigger' && o.metadata.name === 'push-failed'));
    expect(consumerProblems(withoutPush)).toEqual(['profile emits avatarpipeline.avatar.failed, which no Trigger consumes']);
  });

  it('dead letters nobody consumes: the dead-letter Broker without its Trigger, or with one that filters', () => {
    const withoutConsumer = env.objects.filter((o) => !(o.kind === 'Trigger' && o.metadata.name === DEAD_LETTER_TRIGGER));
    const problems = consumerProblems(withoutConsumer);
    for (const p of problems) expect(p).toMatch(new RegExp(`dead-lettered by Trigger [a-z-]+ to Broker ${DEAD_LETTER_BROKER}, where no Trigger consumes it$`));
    expect(problems).toContain(`${EventType.approved} dead-lettered by Trigger thumbnail-approved to Broker ${DEAD_LETTER_BROKER}, where no Trigger consumes it`);
    expect(problems).toHaveLength(triggers.length);
    const filtering = clone(env.objects) as any[];
    trigger(filtering, DEAD_LETTER_TRIGGER).spec.filters = [{ exact: { type: EventType.ready } }];
    const undelivered = (p: string) => new RegExp(`dead-lettered by Trigger ([a-z-]+) to Broker ${DEAD_LETTER_BROKER}, where no Trigger consumes it$`).exec(p)?.[1];
    expect(consumerProblems(filtering).map(undelivered).sort()).toEqual(triggers.filter((t) => t.name !== 'push-ready').map((t) => t.name).sort());
  });

  it('a RoleBinding naming a ServiceAccount in another namespace, or one that does not exist', () => {
    const objects = clone(env.objects) as any[];
    const readers = objects.find((o) => o.kind === 'RoleBinding' && o.roleRef.name === 'vapid-reader');
    readers.subjects[0].namespace = 'default';
    readers.subjects[1].name = 'subscriber';
    expect(rbacSubjectProblems(objects)).toEqual([
      `RoleBinding ${readers.metadata.name}: ServiceAccount default/push does not exist`,
      `RoleBinding ${readers.metadata.name}: ServiceAccount ${env.namespace}/subscriber does not exist`,
    ]);
  });

  it('a Knative Service without probes, a public one, or a root container', () => {
    const objects = clone(env.objects) as any[];
    const moderate = objects.find(isObject(KSVC_REF.apiVersion, KSVC_REF.kind, 'moderate'));
    delete moderate.spec.template.spec.containers[0].readinessProbe;
    delete moderate.metadata.labels[VISIBILITY_LABEL];
    moderate.spec.template.spec.containers[0].securityContext.runAsNonRoot = false;
    expect(knativeServiceProblems(objects)).toEqual(['Knative Service moderate: not cluster-local', 'Knative Service moderate: no /readyz readiness probe']);
    expect(restrictedProblems('moderate', moderate.spec.template.spec)).toEqual(['moderate container moderate: runAsNonRoot is not true']);
  });

  it('a service Deployment without probes, under another account, or selecting other pods', () => {
    const objects = clone(eks.objects) as any[];
    const poller = objects.find(isObject('apps/v1', 'Deployment', 's3-source'));
    delete poller.spec.template.spec.containers[0].readinessProbe;
    poller.spec.template.spec.containers[0].livenessProbe.httpGet.port = 9090;
    poller.spec.template.spec.serviceAccountName = 'default';
    poller.spec.selector.matchLabels[APP_NAME] = 'other';
    expect(serviceDeploymentProblems(objects)).toEqual([
      'Deployment s3-source: no /readyz readinessProbe on its port',
      'Deployment s3-source: no /healthz livenessProbe on its port',
      'Deployment s3-source: runs as default, not its own ServiceAccount',
      'Deployment s3-source: its selector does not select its pods',
    ]);
  });
});
