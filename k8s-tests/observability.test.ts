/**
 * Scraping, alerts and the dashboard: every PromQL expression parses (Prometheus' grammar) and
 * names only metrics and labels the services really export, every rule keeps namespaces apart,
 * and every alert links its section of docs/runbooks.md. (prometheus-rules.test.ts runs the rules.)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { serviceNames } from '@avatar-pipeline/kit/topology';
import { alertRules, dashboard, dashboardQueries, RUNBOOKS_PATH, USER_PORT } from '@avatar-pipeline/cdk8s';
import { renderedEnvironments } from './support/helm.js';
import { serviceWorkload, type Container } from './support/invariants.js';
import { clone, ofKind, valueAt, type K8sObject } from './support/manifests.js';
import { declaredMetrics, defaultMetrics, localMetrics, seriesNames, type ExportedMetric } from './support/metrics.js';
import { KNATIVE_SERVICE_POD_LABEL, matches, podTemplates } from './support/network-policies.js';
import { queryParts, withoutGrafanaVariables } from './support/promql.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const exported: ExportedMetric[] = [...declaredMetrics(root), ...defaultMetrics()];
const series = new Map(exported.flatMap((m) => seriesNames(m).map((s) => [s, m] as const)));

/** Labels every series may carry: the registry's default `service`, histogram buckets, and the PodMonitor's target labels. */
const commonLabels = ['service', 'le', 'quantile', 'namespace', 'pod', 'container', 'job', 'instance', 'endpoint'];

const environments = await renderedEnvironments();

type Rule = { alert?: string; record?: string; expr: string; annotations?: Record<string, string> };
type RuleObject = K8sObject & { spec: { groups: { rules: Rule[] }[] } };
const ruleObjects = (objects: readonly K8sObject[]) => ofKind(objects, 'monitoring.coreos.com/v1', 'PrometheusRule') as RuleObject[];
const rules = (ruleObjects(environments[0]!.objects)[0]?.spec.groups ?? []).flatMap((g) => g.rules);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

/** Problems with one expression: syntax, unknown metrics, labels no selected metric has. */
function queryProblems(expr: string): string[] {
  const parts = queryParts(withoutGrafanaVariables(expr));
  const problems = parts.errors.map((at) => `syntax error at ${at} in ${expr}`);
  const selected = parts.metrics.filter((m) => !recorded.has(m));
  for (const name of selected) if (!series.has(name)) problems.push(`unknown metric ${name}`);
  const labels = new Set([...commonLabels, ...selected.flatMap((m) => series.get(m)?.labels ?? [])]);
  for (const label of parts.labels) if (selected.length > 0 && !labels.has(label)) problems.push(`no selected metric has the label ${label} (${expr})`);
  return problems;
}

describe('exported metrics', () => {
  it('are found in every service and named by Prometheus conventions', () => {
    const owners = new Set(exported.map((m) => m.source.split('/')[1]));
    for (const service of ['kit', 'moderate', 'thumbnail', 'profile', 'push', 's3-source', 'presign']) expect(owners, service).toContain(service);
    for (const m of exported) {
      expect(m.name, m.source).toMatch(/^[a-z_:][a-z0-9_:]*$/);
      if (m.type === 'counter') expect(m.name, m.source).toMatch(/_total$/);
    }
    expect(series.has('avatarpipeline_pipeline_end_to_end_seconds_bucket')).toBe(true);
    expect(series.has('process_resident_memory_bytes')).toBe(true);
  });

  it('are the project’s own, named avatarpipeline_…, in the services and the local stack; prom-client’s defaults keep their standard names', () => {
    const own = [...declaredMetrics(root), ...localMetrics(root)];
    expect(own.filter((m) => m.source.startsWith('local/')).length).toBeGreaterThan(0);
    expect(own.filter((m) => !m.name.startsWith('avatarpipeline_')).map((m) => `${m.name} (${m.source})`)).toEqual([]);
    expect(defaultMetrics().every((m) => /^(process|nodejs)_/.test(m.name))).toBe(true);
  });
});

describe('alert rules', () => {
  it.each(environments.map((e) => [e.name, e] as const))('%s: ship as one PrometheusRule, Prometheus’ selector labels on it, exactly as written (the {{ }} of their templates kept)', (_name, env) => {
    const objects = ruleObjects(env.objects);
    expect(objects).toHaveLength(1);
    expect(objects[0]?.spec).toEqual(alertRules(valueAt(env.values, 'monitoring', 'runbookUrl') as string));
    expect(objects[0]?.metadata.labels).toMatchObject(valueAt(env.values, 'monitoring', 'selectorLabels') as Record<string, string>);
  });

  it('cover dead letters, moderation errors, push failures, the end-to-end p99 and uploads not ended in time', () => {
    const alerts = rules.filter((r) => r.alert);
    const byMetric = (metric: string) => alerts.some((a) => a.expr.includes(metric) || [...recorded].some((r) => a.expr.includes(r) && r.includes(metric)));
    expect(byMetric('avatarpipeline_deadletter_events_total')).toBe(true);
    expect(alerts.some((a) => /avatarpipeline_cloudevents_handled_total\{service="moderate",outcome="error"\}/.test(a.expr))).toBe(true);
    expect(byMetric('avatarpipeline_push_notifications_total')).toBe(true);
    expect(byMetric('avatarpipeline_pipeline_end_to_end_seconds')).toBe(true);
    expect(byMetric('avatarpipeline_uploads_overdue_seconds')).toBe(true);
  });

  it.each(rules.map((r) => [r.alert ?? r.record ?? '', r.expr]))('%s aggregates by namespace', (_name, expr) => {
    expect(namespaceProblems(expr)).toEqual([]);
  });

  it.each(rules.map((r) => [r.alert ?? r.record ?? '', r.expr]))('%s uses only exported metrics and labels', (_name, expr) => {
    expect(queryProblems(expr)).toEqual([]);
  });
});

/** The `## ` sections of a Markdown file by their anchor (GitHub's: lower case, spaces to hyphens, other punctuation dropped). */
function markdownSections(markdown: string): Map<string, string> {
  const sections = new Map<string, string>();
  for (const part of markdown.split(/^(?=## )/m).slice(1)) {
    const heading = part.slice(3, part.indexOf('\n')).trim();
    sections.set(heading.toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-'), part);
  }
  return sections;
}

const RUNBOOK_PARTS = ['Meaning', 'Confirm', 'Likely causes', 'What to do'];

/** What keeps each alert from linking a complete section of the runbooks published at `base`. */
function runbookProblems(alerts: readonly Rule[], markdown: string, base: string): string[] {
  const sections = markdownSections(markdown);
  return alerts.flatMap((alert) => {
    const url = alert.annotations?.['runbook_url'] ?? '';
    if (!url.startsWith(`${base}#`)) return [`${alert.alert}: runbook_url ${url} is not under ${base}`];
    const section = sections.get(url.slice(base.length + 1));
    if (!section) return [`${alert.alert}: no section ${url.slice(base.length)} in ${RUNBOOKS_PATH}`];
    return RUNBOOK_PARTS.filter((part) => !new RegExp(`^### ${part}$`, 'm').test(section)).map((part) => `${alert.alert}: no "### ${part}"`);
  });
}

describe('runbooks', () => {
  const markdown = readFileSync(new URL(`../${RUNBOOKS_PATH}`, import.meta.url), 'utf8');
  const alerts = rules.filter((r) => r.alert);
  const base = valueAt(environments[0]!.values, 'monitoring', 'runbookUrl') as string;

  it('every alert has a summary, a description and a runbook_url to its section of docs/runbooks.md: meaning, how to confirm, likely causes, what to do', () => {
    for (const alert of alerts) expect(Object.keys(alert.annotations ?? {}).sort(), alert.alert).toEqual(['description', 'runbook_url', 'summary']);
    expect(runbookProblems(alerts, markdown, base)).toEqual([]);
  });

  it('the check fails on a missing section or part', () => {
    const [first, second] = alerts as [Rule & { alert: string }, Rule & { alert: string }];
    const partial = markdown.replace(new RegExp(`^## ${second.alert}$`, 'm'), '## Renamed').replace(/^### Likely causes$/m, '### Causes');
    expect(runbookProblems([first, second], partial, base)).toEqual([`${first.alert}: no "### Likely causes"`, `${second.alert}: no section #${second.alert.toLowerCase()} in ${RUNBOOKS_PATH}`]);
  });
});

describe('the Grafana dashboard', () => {
  it('ships as a sidecar-labelled ConfigMap holding the dashboard JSON', () => {
    for (const env of environments) {
      const map = ofKind(env.objects, 'v1', 'ConfigMap').find((c) => c.metadata.labels?.['grafana_dashboard'] === '1') as unknown as { data: Record<string, string> } | undefined;
      expect(map, env.name).toBeDefined();
      const [json] = Object.values(map?.data ?? {});
      expect(JSON.parse(json ?? '{}')).toEqual(dashboard());
    }
  });

  it.each(dashboardQueries().map((q) => [q]))('%s uses only exported metrics and labels', (expr) => {
    expect(queryProblems(expr)).toEqual([]);
  });
});

type PodMonitorObject = K8sObject & {
  spec: { selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] }; podMetricsEndpoints: { port: string; path: string }[] };
};

/**
 * The ports a service's pods name: Knative names the user container's port `user-port` on every
 * revision pod (whatever the template calls it); a Deployment's pods have the names it gives.
 */
function podPortNames(objects: readonly K8sObject[], service: string): string[] {
  const workload = serviceWorkload(objects, service);
  if (!workload) return [];
  if (workload.kind === 'Service') return [USER_PORT];
  return workload.spec.template.spec.containers.flatMap((c: Container) => (c.ports ?? []).flatMap((p) => (p.name ? [p.name] : [])));
}

/** What keeps each PodMonitor from scraping exactly its service's pods on their user port. */
function podMonitorProblems(objects: readonly K8sObject[]): string[] {
  const monitors = ofKind(objects, 'monitoring.coreos.com/v1', 'PodMonitor') as PodMonitorObject[];
  // Revision pods carry their template's labels plus Knative's (serving.knative.dev/service: <name>).
  const pods = podTemplates(objects);
  return monitors.flatMap((m) => {
    const service = m.metadata.name;
    const workload = serviceWorkload(objects, service);
    const own = `${workload?.kind ?? '(no workload)'} ${service}`;
    const selected = pods.filter((p) => matches(m.spec.selector, p.labels)).map((p) => p.where);
    return [
      ...(selected.length === 1 && selected[0] === own ? [] : [`PodMonitor ${service}: selects ${selected.length === 0 ? 'no pod' : selected.join(', ')}, not the pods of ${own}`]),
      ...(podPortNames(objects, service).includes(USER_PORT) ? [] : [`PodMonitor ${service}: the pods of ${own} have no port ${USER_PORT}`]),
    ];
  });
}

describe('scraping', () => {
  it.each(environments.map((e) => [e.name, e] as const))('%s: a PodMonitor per service scrapes its pods’ /metrics on the user port, and only them', (_name, env) => {
    const monitors = ofKind(env.objects, 'monitoring.coreos.com/v1', 'PodMonitor') as PodMonitorObject[];
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual([...serviceNames].sort());
    for (const m of monitors) {
      expect(m.metadata.labels, m.metadata.name).toMatchObject(valueAt(env.values, 'monitoring', 'selectorLabels') as Record<string, string>);
      expect(m.spec.podMetricsEndpoints, m.metadata.name).toEqual([expect.objectContaining({ port: USER_PORT, path: '/metrics' })]);
    }
    expect(podMonitorProblems(env.objects)).toEqual([]);
  });

  it('fails on a PodMonitor selecting only Knative revision pods of a service that runs as a Deployment, or pods without the port', () => {
    const eks = environments.find((e) => e.name === 'eks')!;
    const objects = clone(eks.objects) as any[];
    const monitor = objects.find((o) => o.kind === 'PodMonitor' && o.metadata.name === 's3-source');
    monitor.spec.selector = { matchLabels: { [KNATIVE_SERVICE_POD_LABEL]: 's3-source' } };
    const poller = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 's3-source');
    poller.spec.template.spec.containers[0].ports[0].name = 'http';
    expect(podMonitorProblems(objects)).toEqual([
      'PodMonitor s3-source: selects no pod, not the pods of Deployment s3-source',
      'PodMonitor s3-source: the pods of Deployment s3-source have no port user-port',
    ]);
    const presign = objects.find((o) => o.kind === 'PodMonitor' && o.metadata.name === 'presign');
    presign.spec.selector = { matchLabels: { 'app.kubernetes.io/component': 'service' } };
    expect(podMonitorProblems(objects)[0]).toMatch(/^PodMonitor presign: selects Service presign, Service moderate, .*, not the pods of Service presign$/);
  });
});

/**
 * What keeps an expression from keeping releases apart: an aggregation not `by (namespace, …)`, or
 * no aggregation at all over anything but series recorded per namespace (`namespace:…`).
 */
function namespaceProblems(expr: string): string[] {
  const { metrics, groupings } = queryParts(expr);
  const ungrouped = groupings.filter((by) => !by?.includes('namespace')).map((by) => `aggregation ${by ? `by (${by.join(', ')})` : 'without by'} in ${expr}`);
  if (groupings.length > 0) return ungrouped;
  return metrics.filter((m) => !(recorded.has(m) && m.startsWith('namespace:'))).map((m) => `${m} is not aggregated by namespace in ${expr}`);
}

describe('the query checks fail', () => {
  it('on an aggregation that mixes namespaces', () => {
    expect(namespaceProblems('sum by (type) (increase(avatarpipeline_deadletter_events_total[5m])) > 0')).toEqual([
      'aggregation by (type) in sum by (type) (increase(avatarpipeline_deadletter_events_total[5m])) > 0',
    ]);
    expect(namespaceProblems('sum(rate(a[5m])) / sum by (namespace) (rate(b[5m]))')).toEqual(['aggregation without by in sum(rate(a[5m])) / sum by (namespace) (rate(b[5m]))']);
    expect(namespaceProblems('avatarpipeline_uploads_overdue_seconds > 0')).toEqual(['avatarpipeline_uploads_overdue_seconds is not aggregated by namespace in avatarpipeline_uploads_overdue_seconds > 0']);
  });

  it('on an unknown metric, a label it does not have, and a syntax error', () => {
    expect(queryProblems('sum(rate(pipeline_end_to_end_seconds_bucket[5m]))')).toEqual(['unknown metric pipeline_end_to_end_seconds_bucket']);
    expect(queryProblems('sum by (reason) (rate(avatarpipeline_deadletter_events_total[5m]))')).toEqual([
      'no selected metric has the label reason (sum by (reason) (rate(avatarpipeline_deadletter_events_total[5m])))',
    ]);
    expect(queryProblems('sum(rate(avatarpipeline_deadletter_events_total[5m])')[0]).toMatch(/^syntax error/);
  });
});
