/**
 * Scraping, alerts and the dashboard: every PromQL expression parses (Prometheus' grammar) and
 * names only metrics and labels the services really export.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { serviceNames } from '@avatar-pipeline/kit';
import { dashboard, dashboardQueries, KNATIVE_SERVICE_LABEL, USER_PORT } from '@avatar-pipeline/cdk8s';
import { declaredMetrics, defaultMetrics, seriesNames, type ExportedMetric } from './support/metrics.js';
import { allEnvironments, ofKind, synthesize } from './support/manifests.js';
import { queryParts, withoutGrafanaVariables } from './support/promql.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const exported: ExportedMetric[] = [...declaredMetrics(root), ...defaultMetrics()];
const series = new Map(exported.flatMap((m) => seriesNames(m).map((s) => [s, m] as const)));

/** Labels every series may carry: the registry's default `service`, histogram buckets, and the PodMonitor's target labels. */
const commonLabels = ['service', 'le', 'quantile', 'namespace', 'pod', 'container', 'job', 'instance', 'endpoint'];

type Rule = { alert?: string; record?: string; expr: string };
const rules = (synthesize('kind').objects.find((o) => o.kind === 'PrometheusRule') as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups.flatMap((g) => g.rules);
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
    expect(series.has('pipeline_end_to_end_seconds_bucket')).toBe(true);
    expect(series.has('process_resident_memory_bytes')).toBe(true);
  });
});

describe('alert rules', () => {
  it('cover dead letters, moderation errors, push failures and the end-to-end p99', () => {
    const alerts = rules.filter((r) => r.alert);
    const byMetric = (metric: string) => alerts.some((a) => a.expr.includes(metric) || [...recorded].some((r) => a.expr.includes(r) && r.includes(metric)));
    expect(byMetric('deadletter_events_total')).toBe(true);
    expect(alerts.some((a) => /cloudevents_handled_total\{service="moderate",outcome="error"\}/.test(a.expr))).toBe(true);
    expect(byMetric('push_notifications_total')).toBe(true);
    expect(byMetric('pipeline_end_to_end_seconds')).toBe(true);
  });

  it.each(rules.map((r) => [r.alert ?? r.record ?? '', r.expr]))('%s uses only exported metrics and labels', (_name, expr) => {
    expect(queryProblems(expr)).toEqual([]);
  });
});

describe('the Grafana dashboard', () => {
  it('ships as a sidecar-labelled ConfigMap holding the dashboard JSON', () => {
    for (const env of allEnvironments()) {
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

describe('scraping', () => {
  it.each(allEnvironments().map((e) => [e.name, e]))('%s: a PodMonitor per service scrapes its revision pods on the user port', (_name, env) => {
    const monitors = ofKind(env.objects, 'monitoring.coreos.com/v1', 'PodMonitor') as unknown as {
      metadata: { name: string; labels: Record<string, string> };
      spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path: string }[] };
    }[];
    expect(monitors.map((m) => m.spec.selector.matchLabels[KNATIVE_SERVICE_LABEL]).sort()).toEqual([...serviceNames].sort());
    for (const m of monitors) {
      expect(m.spec.podMetricsEndpoints).toEqual([expect.objectContaining({ port: USER_PORT, path: '/metrics' })]);
      expect(m.metadata.labels).toMatchObject(env.config.monitoring.selectorLabels);
    }
  });
});

describe('the query checks fail', () => {
  it('on an unknown metric, a label it does not have, and a syntax error', () => {
    expect(queryProblems('sum(rate(pipeline_end_to_end_second_bucket[5m]))')).toEqual(['unknown metric pipeline_end_to_end_second_bucket']);
    expect(queryProblems('sum by (reason) (rate(deadletter_events_total[5m]))')).toEqual(['no selected metric has the label reason (sum by (reason) (rate(deadletter_events_total[5m])))']);
    expect(queryProblems('sum(rate(deadletter_events_total[5m])')[0]).toMatch(/^syntax error/);
  });
});
