/**
 * charts/avatar-pipeline: the Helm chart. Chart.yaml, the template the cdk8s app writes
 * (helm.ts), the helpers it calls, and the values files from cdk8s/chart/ (values.yaml with the
 * documented defaults, values-kind.yaml and values-eks.yaml for the two documented environments).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { buildApp } from './app.js';
import { renderTemplate } from './helm.js';
import { environmentNames, valuesFile } from './values.js';

export const CHART_NAME = 'avatar-pipeline';
/** The chart's version; the services' images are tagged by the build, not by the chart. */
export const CHART_VERSION = '0.2.0';
/** Knative 1.21's minimum Kubernetes version. */
const KUBE_VERSION = '>=1.33.0-0';
export const TEMPLATE_FILE = `templates/${CHART_NAME}.yaml`;

const chartYaml = [
  'apiVersion: v2',
  `name: ${CHART_NAME}`,
  'description: Avatar uploads for game backends on Knative (presigned uploads, moderation, thumbnails, Web Push)',
  'type: application',
  `version: ${CHART_VERSION}`,
  `appVersion: "${CHART_VERSION}"`,
  `kubeVersion: "${KUBE_VERSION}"`,
  '',
].join('\n');

/** Named templates the chart's template calls. */
const helpers = [
  '{{/* nginx `map $http_origin` entries: the allowed CORS origins (corsOrigins). */}}',
  '{{- define "avatar-pipeline.corsOrigins" -}}',
  '{{- range .Values.corsOrigins }}',
  '{{ . | quote }} $http_origin;',
  '{{- end }}',
  '{{- end }}',
  '',
].join('\n');

const notes = [
  'avatar-pipeline {{ .Chart.AppVersion }} is installed in namespace {{ .Release.Namespace }}.',
  '',
  'Wait for the Knative Services: kubectl wait ksvc --all -n {{ .Release.Namespace }} --for=condition=Ready --timeout=10m',
  '{{- if .Values.gateway.ingress.enabled }}',
  'The API is served on https://{{ .Values.gateway.ingress.host }}.',
  '{{- else }}',
  'Reach the gateway with: kubectl port-forward -n {{ .Release.Namespace }} svc/gateway 8080',
  '{{- end }}',
  '',
].join('\n');

const source = (file: string) => readFileSync(new URL(`../chart/${file}`, import.meta.url), 'utf8');

/** Maps whose keys are the operator's (labels, annotations, settings of other software), by the type of their values. */
const OPEN_MAPS: Readonly<Record<string, object>> = {
  'image.tags': { type: 'string' },
  'moderation.policy': {
    oneOf: [
      { type: 'number', minimum: 0, maximum: 100 },
      {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: { block: { type: 'number', minimum: 0, maximum: 100 }, review: { type: 'number', minimum: 0, maximum: 100 } },
      },
    ],
  },
  'broker.config': { type: ['string', 'null'] },
  'gateway.ingress.annotations': { type: 'string' },
  'networkPolicy.dnsPodLabels': { type: 'string' },
  'networkPolicy.prometheus.podLabels': { type: 'string' },
  'monitoring.selectorLabels': { type: 'string' },
  'tracing.collector.podLabels': { type: 'string' },
};
/** Values whose defaults are empty lists: the type of their items. */
const LIST_ITEMS: Readonly<Record<string, object>> = {
  corsOrigins: { type: 'string', pattern: '^https?://[^/]+$' },
  'auth.issuers': { type: 'string', minLength: 1 },
  'auth.jwksUrls': { type: 'string', pattern: '^https?://' },
  'auth.clientIds': { type: 'string', minLength: 1 },
  'networkPolicy.gatewayFrom': { type: 'object' },
};
/** Closed sets of choices. */
const ENUMS: Readonly<Record<string, readonly string[]>> = {
  's3Source.mode': ['webhook', 'sqs'],
  'vapid.store': ['k8s-secret', 'ssm'],
  'moderation.provider': ['nsfwjs', 'rekognition'],
  'image.pullPolicy': ['Always', 'IfNotPresent', 'Never'],
  'gateway.service.type': ['ClusterIP', 'NodePort', 'LoadBalancer'],
  logLevel: ['debug', 'info', 'warn', 'error'],
  // Empty: the SDK's default.
  'tracing.protocol': ['', 'http/protobuf', 'http/json', 'grpc'],
  'tracing.sampler': ['', 'always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'],
};

/**
 * values.schema.json, from the documented defaults: every key values.yaml has, of its type, and no
 * other (Helm refuses a misspelt value instead of silently ignoring it), except in open maps.
 */
export function valuesSchema(values: unknown, path = ''): object {
  const at = (key: string) => (path ? `${path}.${key}` : key);
  if (ENUMS[path]) return { enum: ENUMS[path] };
  if (Array.isArray(values)) return { type: 'array', items: LIST_ITEMS[path] ?? (values.length > 0 ? valuesSchema(values[0], path) : {}) };
  if (values !== null && typeof values === 'object') {
    const open = OPEN_MAPS[path];
    if (open) return { type: 'object', additionalProperties: open };
    const entries = Object.entries(values);
    return {
      type: 'object',
      additionalProperties: false,
      required: entries.map(([k]) => k),
      properties: Object.fromEntries(entries.map(([k, v]) => [k, valuesSchema(v, at(k))])),
    };
  }
  if (typeof values === 'number') return { type: Number.isInteger(values) ? 'integer' : 'number' };
  return { type: typeof values };
}

/** Every file of the chart, by its path in the chart folder. */
export function chartFiles(): Record<string, string> {
  return {
    'Chart.yaml': chartYaml,
    'README.md': source('README.md'),
    'values.yaml': source('values.yaml'),
    'values.schema.json': `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...valuesSchema(parse(source('values.yaml'))) }, null, 2)}\n`,
    ...Object.fromEntries(environmentNames.map((e) => [valuesFile(e), source(valuesFile(e))])),
    'templates/_helpers.tpl': helpers,
    'templates/NOTES.txt': notes,
    [TEMPLATE_FILE]: renderTemplate(buildApp().chart),
  };
}

/** Replaces the chart folder's contents with `chartFiles`. */
export function writeChart(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
  for (const [path, content] of Object.entries(chartFiles())) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}
