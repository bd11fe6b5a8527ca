/**
 * The Grafana dashboard, shipped as a ConfigMap the Grafana sidecar loads (label
 * `grafana_dashboard: "1"`). Queries use only metrics the services export (checked in k8s-tests).
 */

interface Panel {
  title: string;
  unit: string;
  /** PromQL and legend per series. */
  targets: { expr: string; legend: string }[];
}

const row = (panels: Panel[]) => panels;

const rows: Panel[][] = [
  row([
    {
      title: 'Upload to ready (p50, p90, p99)',
      unit: 's',
      targets: [0.5, 0.9, 0.99].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(avatarpipeline_pipeline_end_to_end_seconds_bucket[$__rate_interval])))`,
        legend: `p${Math.round(q * 100)}`,
      })),
    },
    {
      title: 'Moderation decisions',
      unit: 'ops',
      targets: [{ expr: 'sum by (outcome) (rate(avatarpipeline_moderation_decisions_total[$__rate_interval]))', legend: '{{outcome}}' }],
    },
    {
      title: 'Dead-lettered events',
      unit: 'short',
      targets: [{ expr: 'sum by (type, stage) (increase(avatarpipeline_deadletter_events_total[$__rate_interval]))', legend: '{{type}} ({{stage}})' }],
    },
  ]),
  row([
    {
      title: 'Events handled by service and outcome',
      unit: 'ops',
      targets: [{ expr: 'sum by (service, outcome) (rate(avatarpipeline_cloudevents_handled_total[$__rate_interval]))', legend: '{{service}} {{outcome}}' }],
    },
    {
      title: 'Event handling time p95',
      unit: 's',
      targets: [
        {
          expr: 'histogram_quantile(0.95, sum by (service, le) (rate(avatarpipeline_cloudevent_handling_duration_seconds_bucket[$__rate_interval])))',
          legend: '{{service}}',
        },
      ],
    },
    {
      title: 'Upload notifications relayed',
      unit: 'ops',
      targets: [
        { expr: 'sum by (input) (rate(avatarpipeline_s3source_events_emitted_total[$__rate_interval]))', legend: 'emitted ({{input}})' },
        { expr: 'sum(rate(avatarpipeline_s3source_sink_failures_total[$__rate_interval]))', legend: 'sink failures' },
      ],
    },
  ]),
  row([
    {
      title: 'Moderation and thumbnail time p95',
      unit: 's',
      targets: [
        { expr: 'histogram_quantile(0.95, sum by (le) (rate(avatarpipeline_moderation_duration_seconds_bucket[$__rate_interval])))', legend: 'moderation' },
        { expr: 'histogram_quantile(0.95, sum by (le) (rate(avatarpipeline_thumbnail_duration_seconds_bucket[$__rate_interval])))', legend: 'thumbnails' },
      ],
    },
    {
      title: 'Web Push deliveries',
      unit: 'ops',
      targets: [{ expr: 'sum by (outcome) (rate(avatarpipeline_push_notifications_total[$__rate_interval]))', legend: '{{outcome}}' }],
    },
    {
      title: 'HTTP latency p95 by service',
      unit: 's',
      targets: [
        {
          expr: 'histogram_quantile(0.95, sum by (service, le) (rate(avatarpipeline_http_request_duration_seconds_bucket{route!~"/healthz|/readyz|/metrics"}[$__rate_interval])))',
          legend: '{{service}}',
        },
      ],
    },
  ]),
  row([
    {
      title: 'Presigned uploads issued',
      unit: 'ops',
      targets: [{ expr: 'sum by (content_type) (rate(avatarpipeline_presign_uploads_issued_total[$__rate_interval]))', legend: '{{content_type}}' }],
    },
    {
      title: 'Rate-limited requests',
      unit: 'ops',
      targets: [{ expr: 'sum by (service, scope) (rate(avatarpipeline_rate_limited_total[$__rate_interval]))', legend: '{{service}} {{scope}}' }],
    },
    {
      title: 'Resident memory by pod',
      unit: 'bytes',
      targets: [{ expr: 'sum by (service, pod) (process_resident_memory_bytes)', legend: '{{service}} {{pod}}' }],
    },
  ]),
  row([
    {
      title: 'Uploads past their deadline (longest wait beyond it)',
      unit: 's',
      targets: [{ expr: 'max by (status) (avatarpipeline_uploads_overdue_seconds)', legend: '{{status}}' }],
    },
  ]),
];

const WIDTH = 8;
const HEIGHT = 8;

export const DASHBOARD_UID = 'avatar-pipeline';

export function dashboard(): Record<string, unknown> {
  const datasource = { type: 'prometheus', uid: '${datasource}' };
  let id = 0;
  const panels = rows.flatMap((panels, y) =>
    panels.map((panel, x) => ({
      id: ++id,
      type: 'timeseries',
      title: panel.title,
      datasource,
      gridPos: { x: x * WIDTH, y: y * HEIGHT, w: WIDTH, h: HEIGHT },
      fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
      targets: panel.targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), datasource, expr: t.expr, legendFormat: t.legend })),
    })),
  );
  return {
    uid: DASHBOARD_UID,
    title: 'Avatar pipeline',
    tags: ['avatar-pipeline', 'knative'],
    timezone: 'browser',
    schemaVersion: 39,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    templating: {
      list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 }],
    },
    panels,
  };
}

/** Every PromQL expression of the dashboard (for validation). */
export function dashboardQueries(): string[] {
  return rows.flat().flatMap((p) => p.targets.map((t) => t.expr));
}
