/** Invariants across the objects of each environment, and against the services' own code. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  apiRoutes,
  createLogger,
  deadLetterSink,
  durationMs,
  emits,
  eventAudience,
  eventAuthFromConfig,
  eventConsumers,
  loadConfig,
  publicServices,
  serviceNames,
  TTL_ATTRIBUTE,
  triggers,
  UPLOAD_PREFIX,
  type ServiceName,
} from '@avatar-pipeline/kit';
import { vapidEnv } from '@avatar-pipeline/vapid';
import { deliverySpec, nginxConfig, gatewayRoutes, setupScript } from '@avatar-pipeline/cdk8s';
import {
  consumerProblems,
  destinationProblems,
  knativeServiceProblems,
  knativeServices,
  podTemplates,
  rbacSubjectProblems,
  restrictedProblems,
  triggersOf,
  type Destination,
} from './support/invariants.js';
import { allEnvironments, clone, ofKind, synthesize, type K8sObject, type Synthesized } from './support/manifests.js';
import { serviceEnvShape } from './support/service-env.js';

const environments = allEnvironments().map((env) => [env.name, env] as const);

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } };
type EnvFrom = { configMapRef?: { name: string }; secretRef?: { name: string } };

/** The data of a ConfigMap or Secret of the chart (Secrets carry stringData). */
function dataOf(env: Synthesized, kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> | undefined {
  const object = ofKind(env.objects, 'v1', kind).find((o) => o.metadata.name === name) as (K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> }) | undefined;
  return object && { ...object.data, ...object.stringData };
}

/** The environment a container starts with, as Kubernetes and Knative assemble it. */
function containerEnvironment(env: Synthesized, container: { env?: EnvVar[]; envFrom?: EnvFrom[] }, extra: Record<string, string> = {}): { vars: Record<string, string>; missing: string[] } {
  const vars: Record<string, string> = {};
  const missing: string[] = [];
  for (const from of container.envFrom ?? []) {
    const name = from.configMapRef?.name ?? from.secretRef?.name ?? '';
    const data = dataOf(env, from.configMapRef ? 'ConfigMap' : 'Secret', name);
    if (data) Object.assign(vars, data);
    else if (!(from.secretRef && env.name === 'eks')) missing.push(`envFrom ${name}`);
  }
  for (const v of container.env ?? []) {
    const ref = v.valueFrom?.secretKeyRef ?? v.valueFrom?.configMapKeyRef;
    if (v.value !== undefined) vars[v.name] = v.value;
    else if (ref) {
      const value = dataOf(env, v.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name)?.[ref.key];
      if (value === undefined) missing.push(`${v.name} from ${ref.name}/${ref.key}`);
      else vars[v.name] = value;
    }
  }
  return { vars: { ...vars, ...extra }, missing };
}

const sinkBound = (env: Synthesized, service: string) =>
  ofKind(env.objects, 'sources.knative.dev/v1', 'SinkBinding').some((b) => (b as unknown as { spec: { subject: { name: string } } }).spec.subject.name === service);

/** What Knative adds: PORT, and K_SINK from a SinkBinding (the broker's address). */
const knativeAdds = (env: Synthesized, service: string): Record<string, string> => ({
  PORT: '8080',
  ...(sinkBound(env, service) ? { K_SINK: `http://broker-ingress.knative-eventing.svc.cluster.local/${env.config.namespace}/avatar-pipeline` } : {}),
});

/** Variables read by the runtime rather than by a service's config schema. */
const runtimeVariables = new Set(['MALLOC_ARENA_MAX', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'NODE_EXTRA_CA_CERTS']);

describe.each(environments)('%s', (_name, env) => {
  const ksvcs = knativeServices(env.objects);
  const ksvc = (name: string) => ksvcs.find((k) => k.metadata.name === name);

  // A second object of the same kind and name would silently replace the first on apply.
  it('has unique names per kind, every namespaced object in the chart namespace', () => {
    const keys = env.objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    for (const o of env.objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(env.config.namespace);
  });

  it('has one Knative Service per service, each with probes, limits, a non-root security context and autoscaling bounds', () => {
    expect(ksvcs.map((k) => k.metadata.name).sort()).toEqual([...serviceNames].sort());
    expect(knativeServiceProblems(env.objects)).toEqual([]);
  });

  it('runs every pod under the restricted Pod Security Standard, with requests and a memory limit', () => {
    const templates = podTemplates(env.objects);
    expect(templates.length).toBeGreaterThanOrEqual(serviceNames.length + 2);
    expect(templates.flatMap((t) => restrictedProblems(t.where, t.spec))).toEqual([]);
  });

  it('scales to zero, except s3-source while it polls SQS', () => {
    for (const k of ksvcs) {
      const min = k.spec.template.metadata.annotations?.['autoscaling.knative.dev/min-scale'];
      const polls = k.metadata.name === 's3-source' && env.config.sqsQueueUrl !== undefined;
      expect(min, k.metadata.name).toBe(polls ? '1' : '0');
    }
  });

  it('takes few concurrent requests per pod for image work and many for the HTTP APIs', () => {
    const concurrency = (name: ServiceName) => ksvc(name)?.spec.template.spec.containerConcurrency ?? 0;
    for (const name of ['moderate', 'thumbnail'] as const) expect(concurrency(name)).toBeLessThanOrEqual(4);
    for (const name of publicServices) expect(concurrency(name)).toBeGreaterThanOrEqual(20);
  });

  it('creates one Trigger per topology entry with its filters, subscriber and delivery policy', () => {
    const objects = triggersOf(env.objects);
    const audience = (service: ServiceName) => eventAudience(env.config.namespace, service);
    expect(objects.map((t) => t.metadata.name).sort()).toEqual(triggers.map((t) => t.name).sort());
    for (const topology of triggers) {
      const trigger = objects.find((t) => t.metadata.name === topology.name);
      expect(trigger?.spec).toEqual({
        broker: 'avatar-pipeline',
        filters: topology.filters,
        subscriber: {
          ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: topology.subscriber.service },
          uri: topology.subscriber.path,
          audience: audience(topology.subscriber.service),
        },
        delivery: deliverySpec(topology.delivery, env.config),
      });
      expect(trigger?.spec.delivery?.deadLetterSink).toEqual({
        ref: expect.objectContaining({ name: deadLetterSink.service }),
        uri: deadLetterSink.path,
        audience: audience(deadLetterSink.service),
      });
    }
  });

  // Serving sets no audience on a Knative Service: without one on the Trigger, Knative sends no token.
  it('names an OIDC audience on every delivery, and has each event endpoint expect exactly its own', async () => {
    const broker = ofKind(env.objects, 'eventing.knative.dev/v1', 'Broker')[0] as unknown as { spec: { delivery: { deadLetterSink: Destination } } };
    const destinations = [...triggersOf(env.objects).flatMap((t) => [t.spec.subscriber, t.spec.delivery?.deadLetterSink]), broker.spec.delivery.deadLetterSink];
    const silent = createLogger('invariants', 'silent');
    for (const name of eventConsumers) {
      const named = new Set(destinations.filter((d) => d?.ref?.name === name).map((d) => d?.audience));
      expect([...named], name).toEqual([eventAudience(env.config.namespace, name)]);
      const shape = await serviceEnvShape(name);
      if (!shape) continue;
      const [container] = ksvc(name)?.spec.template.spec.containers ?? [];
      const { vars } = containerEnvironment(env, container as { env?: EnvVar[]; envFrom?: EnvFrom[] }, knativeAdds(env, name));
      const policy = eventAuthFromConfig(loadConfig(shape, vars) as Parameters<typeof eventAuthFromConfig>[0], silent);
      expect(policy, name).toMatchObject({ issuer: env.config.eventsOidc.issuer, audience: [...named] });
    }
  });

  it('sends the broker the token a SinkBinding mounts from the services that post to it', async () => {
    for (const name of serviceNames.filter((n) => sinkBound(env, n))) {
      const own = ((ksvc(name)?.spec.template.spec.containers[0] as { env?: EnvVar[] }).env ?? []).find((v) => v.name === 'K_SINK_OIDC_TOKEN_FILE');
      expect(own?.value, name).toBe('/oidc/token');
    }
  });

  it('lets every subscriber take a delivery for as long as its Trigger waits', () => {
    for (const trigger of triggers) {
      const timeoutSeconds = ksvc(trigger.subscriber.service)?.spec.template.spec as { timeoutSeconds?: number } | undefined;
      expect(timeoutSeconds?.timeoutSeconds ?? 0, trigger.name).toBeGreaterThanOrEqual(durationMs(trigger.delivery.timeout) / 1000);
    }
  });

  it("resolves every Trigger's broker, subscriber and dead-letter sink, and every SinkBinding", () => {
    expect(destinationProblems(env.objects)).toEqual([]);
  });

  it('has a consumer for every event type a service emits', () => {
    expect(consumerProblems(env.objects)).toEqual([]);
  });

  it('binds exactly the services that need K_SINK to the broker', async () => {
    for (const name of serviceNames) {
      const shape = await serviceEnvShape(name);
      if (!shape) continue;
      const sink = shape['K_SINK'];
      const needsSink = sink !== undefined && !z.safeParse(sink, undefined).success;
      expect(sinkBound(env, name), name).toBe(needsSink);
    }
  });

  it.each(serviceNames.map((s) => [s]))("gives %s a configuration its own loadConfig accepts, and only variables it reads", async (name) => {
    const shape = await serviceEnvShape(name);
    if (!shape) return void console.warn(`k8s-tests: services/${name} has no main.ts yet; its configuration is not checked`);
    const [container] = ksvc(name)?.spec.template.spec.containers ?? [];
    const { vars, missing } = containerEnvironment(env, container as { env?: EnvVar[]; envFrom?: EnvFrom[] }, knativeAdds(env, name));
    expect(missing).toEqual([]);
    expect(() => loadConfig(shape, vars)).not.toThrow();
    const own = ((container as { env?: EnvVar[] }).env ?? []).map((v) => v.name);
    expect(own.filter((v) => !(v in shape) && !runtimeVariables.has(v))).toEqual([]);
  });

  it('gives the VAPID init Job a configuration the vapid package accepts', () => {
    const job = ofKind(env.objects, 'batch/v1', 'Job').find((j) => j.metadata.name === 'vapid-init') as unknown as {
      spec: { template: { spec: { serviceAccountName: string; containers: { command: string[]; env?: EnvVar[] }[] } } };
    };
    const [container] = job.spec.template.spec.containers;
    expect(container?.command).toEqual(['node', 'services/vapid/dist/init.js']);
    const { vars, missing } = containerEnvironment(env, container ?? {});
    expect(missing).toEqual([]);
    const config = loadConfig(vapidEnv, vars);
    expect(config.VAPID_STORE).toBe(env.config.vapid.store);
    expect(job.spec.template.spec.serviceAccountName).toBe('vapid-init');
  });

  it('rolls a new revision when the shared configuration changes', () => {
    const hashes = new Set(ksvcs.map((k) => k.spec.template.metadata.annotations?.['avatar-pipeline/config-hash']));
    expect(hashes.size).toBe(1);
    expect([...hashes][0]).toMatch(/^[0-9a-f]{16}$/);
  });

  it('gives each workload its own service account, with an API token only where it reads the API', () => {
    const accounts = ofKind(env.objects, 'v1', 'ServiceAccount') as (K8sObject & { automountServiceAccountToken?: boolean })[];
    expect(accounts.map((a) => a.metadata.name).sort()).toEqual([...serviceNames, 'vapid-init'].sort());
    const withToken = accounts.filter((a) => a.automountServiceAccountToken !== false).map((a) => a.metadata.name).sort();
    // On kind the VAPID Secret, and the API's own JWKS for the event endpoints (it serves it to service accounts only).
    expect(withToken).toEqual(env.name === 'kind' ? ['moderate', 'profile', 'push', 'subscribe', 'thumbnail', 'vapid-init'] : []);
    for (const account of accounts) {
      const role = account.metadata.annotations?.['eks.amazonaws.com/role-arn'];
      if (env.name === 'eks') expect(role, account.metadata.name).toMatch(new RegExp(`^arn:aws:iam::\\d{12}:role/avatar-pipeline-${account.metadata.name}$`));
      else expect(role).toBeUndefined();
    }
  });

  it('binds roles only to ServiceAccounts of the chart, in the namespace they live in', () => {
    expect(rbacSubjectProblems(env.objects)).toEqual([]);
  });

  it('exposes only the public API paths, through the gateway', () => {
    const routes = gatewayRoutes(env.config);
    const upstreams = new Set(apiRoutes.map((r) => r.service));
    expect([...upstreams].sort()).toEqual([...publicServices].sort());
    const conf = nginxConfig(routes);
    for (const path of ['/events', '/dead-letter', '/metrics', '/readyz', '/webhook']) expect(conf).not.toContain(`location = ${path}`);
    for (const r of routes) expect(r.location, r.location).toMatch(/^(= \/v1\/|\^~ \/(v1|s3|media|dev|\.well-known)\/)/);
    const configMap = dataOf(env, 'ConfigMap', 'gateway-nginx');
    expect(configMap?.['default.conf']).toBe(conf);
  });
});

describe('kind', () => {
  const env = synthesize('kind');

  it('wires MinIO notifications to s3-source with the token s3-source checks, queued on the volume', () => {
    const minio = ofKind(env.objects, 'apps/v1', 'Deployment').find((d) => d.metadata.name === 'minio') as unknown as {
      spec: { template: { spec: { containers: { env: EnvVar[]; volumeMounts: { mountPath: string; name: string }[] }[] } } };
    };
    const [container] = minio.spec.template.spec.containers;
    const { vars } = containerEnvironment(env, container ?? {});
    expect(vars['MINIO_NOTIFY_WEBHOOK_ENDPOINT_S3SOURCE']).toBe(`http://s3-source.${env.config.namespace}.svc.cluster.local/webhook`);
    const s3Source = knativeServices(env.objects).find((k) => k.metadata.name === 's3-source');
    const { vars: sourceVars } = containerEnvironment(env, (s3Source?.spec.template.spec.containers[0] ?? {}) as { env?: EnvVar[] });
    expect(vars['MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_S3SOURCE']).toBe(sourceVars['WEBHOOK_AUTH_TOKEN']);
    expect(container?.volumeMounts.find((m) => m.mountPath === vars['MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_S3SOURCE'])?.name).toBe('data');
  });

  it('prepares the bucket notification for uploads, public derived avatars and the table with its TTL', () => {
    const script = setupScript(env.config);
    expect(script).toContain(`"Value":"${UPLOAD_PREFIX}"`);
    expect(script).toContain('arn:minio:sqs::S3SOURCE:webhook');
    expect(script).toContain(`arn:aws:s3:::${env.config.bucket}/avatars/*`);
    expect(script).toContain(`AttributeName=${TTL_ATTRIBUTE}`);
    expect(script).toMatch(/KeyType=HASH.*KeyType=RANGE/);
  });

  it('lets the VAPID init Job get only its Secret, and push and subscribe only read it', () => {
    const roles = ofKind(env.objects, 'rbac.authorization.k8s.io/v1', 'Role') as unknown as { metadata: { name: string }; rules: { verbs: string[]; resources: string[]; resourceNames?: string[] }[] }[];
    const init = roles.find((r) => r.metadata.name === 'vapid-init');
    expect(init?.rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ verbs: ['get'], resources: ['secrets'], resourceNames: [env.config.vapid.secretName] }),
        expect.objectContaining({ verbs: ['create'], resources: ['secrets'] }),
      ]),
    );
    expect(roles.find((r) => r.metadata.name === 'vapid-reader')?.rules).toEqual([expect.objectContaining({ verbs: ['get'], resourceNames: [env.config.vapid.secretName] })]);
    const bindings = ofKind(env.objects, 'rbac.authorization.k8s.io/v1', 'RoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string }[] }[];
    const subjects = (role: string) => bindings.filter((b) => b.roleRef.name === role).flatMap((b) => b.subjects.map((s) => s.name)).sort();
    expect(subjects('vapid-init')).toEqual(['vapid-init']);
    expect(subjects('vapid-reader')).toEqual(['push', 'subscribe']);
  });
});

describe('eks', () => {
  const env = synthesize('eks');

  it('runs no stand-ins, secrets or dev issuer: AWS through IRSA, keys in SSM, Cognito tokens', () => {
    const names = env.objects.map((o) => `${o.kind} ${o.metadata.name}`);
    for (const absent of ['Deployment minio', 'Deployment dynamodb', 'Deployment dev-issuer', 'Job stand-ins-setup', 'Role vapid-init']) expect(names).not.toContain(absent);
    expect(ofKind(env.objects, 'v1', 'Secret')).toEqual([]);
    expect(env.config.auth.jwksUrl).toMatch(/^https:\/\/cognito-idp\./);
  });

  it('polls SQS from s3-source and exposes the gateway through an ingress', () => {
    const s3Source = knativeServices(env.objects).find((k) => k.metadata.name === 's3-source');
    const vars = (s3Source?.spec.template.spec.containers[0] as { env?: EnvVar[] }).env ?? [];
    expect(vars.map((v) => v.name)).toEqual(['SQS_QUEUE_URL', 'K_SINK_OIDC_TOKEN_FILE']);
    expect(ofKind(env.objects, 'networking.k8s.io/v1', 'Ingress').map((i) => i.metadata.name)).toEqual(['gateway']);
  });
});

describe('the invariant checks fail on broken copies', () => {
  const env = synthesize('kind');

  it('a Trigger whose subscriber does not exist', () => {
    const objects = env.objects.filter((o) => !(o.kind === 'Service' && o.apiVersion === 'serving.knative.dev/v1' && o.metadata.name === 'thumbnail'));
    expect(destinationProblems(objects)).toEqual(['Trigger thumbnail-approved: subscriber thumbnail does not exist']);
  });

  it('a dead-letter sink that does not exist', () => {
    const objects = env.objects.filter((o) => !(o.apiVersion === 'serving.knative.dev/v1' && o.metadata.name === 'profile'));
    expect(destinationProblems(objects).filter((p) => p.includes('dead-letter sink')).length).toBe(triggers.length + 1);
  });

  it('an emitted type nobody consumes', () => {
    expect(consumerProblems(env.objects, { ...emits, thumbnail: ['avatarpipeline.avatar.resized'] })).toEqual([
      'thumbnail emits avatarpipeline.avatar.resized, which no Trigger consumes',
    ]);
    const withoutPush = env.objects.filter((o) => !(o.kind === 'Trigger' && o.metadata.name === 'push-failed'));
    expect(consumerProblems(withoutPush)).toEqual(['profile emits avatarpipeline.avatar.failed, which no Trigger consumes']);
  });

  it('a RoleBinding naming a ServiceAccount in another namespace, or one that does not exist', () => {
    const objects = clone(env.objects) as any[];
    const readers = objects.find((o) => o.kind === 'RoleBinding' && o.roleRef.name === 'vapid-reader');
    readers.subjects[0].namespace = 'default';
    readers.subjects[1].name = 'subscriber';
    expect(rbacSubjectProblems(objects)).toEqual([
      `RoleBinding ${readers.metadata.name}: ServiceAccount default/push does not exist`,
      `RoleBinding ${readers.metadata.name}: ServiceAccount ${env.config.namespace}/subscriber does not exist`,
    ]);
  });

  it('a Knative Service without probes, a public one, or a root container', () => {
    const objects = clone(env.objects) as any[];
    const moderate = objects.find((o) => o.apiVersion === 'serving.knative.dev/v1' && o.metadata.name === 'moderate');
    delete moderate.spec.template.spec.containers[0].readinessProbe;
    delete moderate.metadata.labels['networking.knative.dev/visibility'];
    moderate.spec.template.spec.containers[0].securityContext.runAsNonRoot = false;
    expect(knativeServiceProblems(objects)).toEqual(['Knative Service moderate: not cluster-local', 'Knative Service moderate: no /readyz readiness probe']);
    expect(restrictedProblems('moderate', moderate.spec.template.spec)).toEqual(['moderate container moderate: runAsNonRoot is not true']);
  });
});
