/**
 * Strict schemas of the custom resources the chart creates (Knative Serving and Eventing v1,
 * Prometheus Operator v1). The kubernetes-models validators check types and required fields but
 * accept any unknown field and any string for an enumeration; these reject both. They list the
 * fields of each API this project uses (a subset of the upstream CRDs): a new field has to be
 * added here, after checking it against the CRD, before the chart may use it.
 */
import { z } from 'zod';
import { durationMs } from '@avatar-pipeline/kit';
import { checkAgainstModel, type StrictProblem } from './strict.js';

const dns1123Label = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(63);
const stringMap = z.record(z.string(), z.string());

const objectMeta = z.strictObject({
  name: dns1123Label,
  namespace: dns1123Label.optional(),
  labels: stringMap.optional(),
  annotations: stringMap.optional(),
});

const isoDuration = z.string().refine(
  (v) => {
    try {
      return durationMs(v) > 0;
    } catch {
      return false;
    }
  },
  { message: 'expected a positive ISO 8601 duration such as PT0.5S' },
);

const destination = z
  .strictObject({
    ref: z.strictObject({ apiVersion: z.string().min(1), kind: z.string().min(1), name: dns1123Label, namespace: dns1123Label.optional() }).optional(),
    uri: z.string().min(1).optional(),
  })
  .refine((d) => d.ref !== undefined || d.uri !== undefined, { message: 'a destination needs a ref or a uri' });

const delivery = z.strictObject({
  retry: z.number().int().min(0).optional(),
  backoffPolicy: z.enum(['linear', 'exponential']).optional(),
  backoffDelay: isoDuration.optional(),
  timeout: isoDuration.optional(),
  deadLetterSink: destination.optional(),
});

type Filter = {
  exact?: Record<string, string> | undefined;
  prefix?: Record<string, string> | undefined;
  suffix?: Record<string, string> | undefined;
  all?: Filter[] | undefined;
  any?: Filter[] | undefined;
  not?: Filter | undefined;
  cesql?: string | undefined;
};

/** One dialect per filter entry (Knative rejects an entry with two). */
const filter: z.ZodType<Filter> = z.lazy(() =>
  z
    .strictObject({
      exact: z.record(z.string(), z.string().min(1)).optional(),
      prefix: z.record(z.string(), z.string().min(1)).optional(),
      suffix: z.record(z.string(), z.string().min(1)).optional(),
      all: z.array(filter).optional(),
      any: z.array(filter).optional(),
      not: filter.optional(),
      cesql: z.string().optional(),
    })
    .refine((f) => Object.keys(f).length === 1, { message: 'a filter entry holds exactly one dialect' }),
);

export const brokerSchema = z.strictObject({
  apiVersion: z.literal('eventing.knative.dev/v1'),
  kind: z.literal('Broker'),
  metadata: objectMeta,
  spec: z.strictObject({ delivery: delivery.optional() }),
});

export const triggerSchema = z.strictObject({
  apiVersion: z.literal('eventing.knative.dev/v1'),
  kind: z.literal('Trigger'),
  metadata: objectMeta,
  spec: z.strictObject({
    broker: dns1123Label,
    filters: z.array(filter).optional(),
    subscriber: destination,
    delivery: delivery.optional(),
  }),
});

export const sinkBindingSchema = z.strictObject({
  apiVersion: z.literal('sources.knative.dev/v1'),
  kind: z.literal('SinkBinding'),
  metadata: objectMeta,
  spec: z.strictObject({
    subject: z.strictObject({ apiVersion: z.string(), kind: z.string(), name: dns1123Label, namespace: dns1123Label.optional() }),
    sink: destination,
  }),
});

const scaleAnnotation = z.string().regex(/^\d+$/, 'expected a whole number');

export const knativeServiceSchema = z.strictObject({
  apiVersion: z.literal('serving.knative.dev/v1'),
  kind: z.literal('Service'),
  metadata: objectMeta.extend({
    labels: stringMap.and(z.object({ 'networking.knative.dev/visibility': z.enum(['cluster-local']).optional() })).optional(),
  }),
  spec: z.strictObject({
    template: z.strictObject({
      metadata: z.strictObject({
        labels: stringMap.optional(),
        annotations: stringMap
          .and(
            z.object({
              'autoscaling.knative.dev/min-scale': scaleAnnotation.optional(),
              'autoscaling.knative.dev/max-scale': scaleAnnotation.optional(),
              'autoscaling.knative.dev/initial-scale': scaleAnnotation.optional(),
              'autoscaling.knative.dev/target': scaleAnnotation.optional(),
              'autoscaling.knative.dev/class': z.enum(['kpa.autoscaling.knative.dev', 'hpa.autoscaling.knative.dev']).optional(),
              'autoscaling.knative.dev/metric': z.enum(['concurrency', 'rps', 'cpu', 'memory']).optional(),
            }),
          )
          .optional(),
      }),
      // Knative's PodSpec field mask (default feature flags): nothing else is accepted.
      spec: z.strictObject({
        serviceAccountName: dns1123Label.optional(),
        containerConcurrency: z.number().int().min(0).max(1000).optional(),
        timeoutSeconds: z.number().int().min(1).max(3600).optional(),
        enableServiceLinks: z.boolean().optional(),
        containers: z.array(z.record(z.string(), z.unknown())).length(1, 'one serving container'),
        volumes: z.array(z.record(z.string(), z.unknown())).optional(),
      }),
    }),
  }),
});

/** Container fields Knative accepts (its ContainerMask). */
const containerFields = new Set([
  'name', 'args', 'command', 'env', 'workingDir', 'envFrom', 'image', 'imagePullPolicy', 'livenessProbe', 'ports',
  'readinessProbe', 'startupProbe', 'resources', 'securityContext', 'terminationMessagePath', 'terminationMessagePolicy', 'volumeMounts',
]);
/** SecurityContext fields Knative accepts (capabilities.add only behind a feature flag). */
const securityContextFields = new Set(['capabilities', 'readOnlyRootFilesystem', 'runAsUser', 'runAsGroup', 'runAsNonRoot', 'allowPrivilegeEscalation', 'seccompProfile']);
const probeHandlers = new Set(['httpGet', 'tcpSocket', 'exec', 'grpc']);
/** Volume sources Knative accepts with default feature flags (emptyDir is enabled by default). */
const volumeSources = new Set(['secret', 'configMap', 'projected', 'emptyDir']);

/** Knative's own validation of a Service's pod template, beyond the schema. */
export function knativePodProblems(spec: { containers: Record<string, unknown>[]; volumes?: Record<string, unknown>[] | undefined }): StrictProblem[] {
  const problems: StrictProblem[] = [];
  spec.containers.forEach((container, i) => {
    const at = `/spec/template/spec/containers/${i}`;
    for (const key of Object.keys(container)) if (!containerFields.has(key)) problems.push({ path: `${at}/${key}`, message: `Knative does not accept container field "${key}"` });
    problems.push(...checkAgainstModel(container, 'V1Container', at));
    const ports = (container['ports'] as { name?: string; containerPort: number }[] | undefined) ?? [];
    if (ports.length > 1) problems.push({ path: `${at}/ports`, message: 'Knative allows one container port' });
    for (const port of ports) if (port.name !== undefined && port.name !== 'http1' && port.name !== 'h2c') problems.push({ path: `${at}/ports`, message: `port name must be http1 or h2c, not ${port.name}` });
    for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const probe = container[probeName] as Record<string, unknown> | undefined;
      if (!probe) continue;
      const handlers = Object.keys(probe).filter((k) => probeHandlers.has(k));
      if (handlers.length !== 1) problems.push({ path: `${at}/${probeName}`, message: 'a probe needs exactly one of httpGet, tcpSocket, exec, grpc' });
      const port = (probe['httpGet'] ?? probe['tcpSocket']) as { port?: unknown } | undefined;
      if (port?.port !== undefined && port.port !== ports[0]?.containerPort) problems.push({ path: `${at}/${probeName}`, message: 'a probe may only target the serving port' });
    }
    const security = (container['securityContext'] ?? {}) as Record<string, unknown>;
    for (const key of Object.keys(security)) if (!securityContextFields.has(key)) problems.push({ path: `${at}/securityContext/${key}`, message: `Knative does not accept securityContext.${key}` });
    if ((security['capabilities'] as { add?: unknown } | undefined)?.add !== undefined) problems.push({ path: `${at}/securityContext/capabilities/add`, message: 'adding capabilities needs a Knative feature flag' });
  });
  (spec.volumes ?? []).forEach((volume, i) => {
    const at = `/spec/template/spec/volumes/${i}`;
    const sources = Object.keys(volume).filter((k) => k !== 'name');
    for (const source of sources) if (!volumeSources.has(source)) problems.push({ path: `${at}/${source}`, message: `Knative does not accept ${source} volumes` });
    problems.push(...checkAgainstModel(volume, 'V1Volume', at));
  });
  return problems;
}

/** Prometheus durations: 30s, 5m, 1h30m. */
const promDuration = z.string().regex(/^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$/).refine((v) => v !== '', 'empty duration');

export const podMonitorSchema = z.strictObject({
  apiVersion: z.literal('monitoring.coreos.com/v1'),
  kind: z.literal('PodMonitor'),
  metadata: objectMeta,
  spec: z.strictObject({
    selector: z.strictObject({ matchLabels: stringMap.optional() }),
    podMetricsEndpoints: z
      .array(
        z.strictObject({
          port: z.string().min(1),
          path: z.string().startsWith('/'),
          scheme: z.enum(['http', 'https']).optional(),
          interval: promDuration,
          scrapeTimeout: promDuration,
          honorLabels: z.boolean().optional(),
        }),
      )
      .min(1),
  }),
});

const alertRule = z.strictObject({
  alert: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
  expr: z.string().min(1),
  for: promDuration.or(z.literal('0m')),
  labels: z.strictObject({ severity: z.enum(['info', 'warning', 'critical']) }),
  annotations: z.strictObject({ summary: z.string().min(1), description: z.string().min(1), runbook_url: z.url().optional() }),
});
const recordingRule = z.strictObject({ record: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/), expr: z.string().min(1) });
/** An alerting rule when it has `alert`, else a recording rule (reported against that schema). */
const rule = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const result = ('alert' in value ? alertRule : recordingRule).safeParse(value);
  if (!result.success) for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
});

export const prometheusRuleSchema = z.strictObject({
  apiVersion: z.literal('monitoring.coreos.com/v1'),
  kind: z.literal('PrometheusRule'),
  metadata: objectMeta,
  spec: z.strictObject({
    groups: z.array(z.strictObject({ name: z.string().min(1), interval: promDuration.optional(), rules: z.array(rule).min(1) })).min(1),
  }),
});

export const customSchemas: Readonly<Record<string, z.ZodType>> = {
  'serving.knative.dev/v1 Service': knativeServiceSchema,
  'eventing.knative.dev/v1 Broker': brokerSchema,
  'eventing.knative.dev/v1 Trigger': triggerSchema,
  'sources.knative.dev/v1 SinkBinding': sinkBindingSchema,
  'monitoring.coreos.com/v1 PodMonitor': podMonitorSchema,
  'monitoring.coreos.com/v1 PrometheusRule': prometheusRuleSchema,
};
