/**
 * Prometheus Operator objects (monitoring.coreos.com/v1, typed by hand) and the alert rules.
 *
 * Scraping: a PodMonitor per service selects its pods by name (Knative's revision pods carry the
 * template's labels; the s3-source poller Deployment is labelled alike) and scrapes the user
 * container's own port (`user-port`: Knative's name for it, and the poller's) directly. The
 * scrape never passes the route, the activator or the queue-proxy, so it is not a request the
 * autoscaler counts and it cannot keep a pod alive or wake a scaled-to-zero service; when a
 * service is at zero there is simply no target (counters restart with each pod: the rules use
 * rate/increase, which handle resets, and every counter's series start at 0, so a pod's first
 * increment is an increase too).
 */
import { ApiObject, type ApiObjectMetadata } from 'cdk8s';
import type { Construct } from 'constructs';

export interface PodMetricsEndpoint {
  port: string;
  path: string;
  interval: string;
  scrapeTimeout: string;
}

export interface PodMonitorSpec {
  selector: { matchLabels: Record<string, string> };
  podMetricsEndpoints: PodMetricsEndpoint[];
}

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: 'warning' | 'critical' };
  annotations: { summary: string; description: string; runbook_url: string };
}

export interface RecordingRule {
  record: string;
  expr: string;
}

export interface PrometheusRuleSpec {
  groups: { name: string; interval?: string; rules: (AlertRule | RecordingRule)[] }[];
}

type Props<S> = { metadata: ApiObjectMetadata & { name: string }; spec: S };

export class PodMonitor extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<PodMonitorSpec>) {
    super(scope, id, { apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor', ...props });
  }
}

export class PrometheusRule extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<PrometheusRuleSpec>) {
    super(scope, id, { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', ...props });
  }
}

/** Knative's name for the user container's port on revision pods. */
export const USER_PORT = 'user-port';

export function podMonitorSpec(service: string): PodMonitorSpec {
  return {
    selector: { matchLabels: { 'app.kubernetes.io/name': service, 'app.kubernetes.io/component': 'service' } },
    podMetricsEndpoints: [{ port: USER_PORT, path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
  };
}

/** The runbooks, as the repository holds them (`monitoring.runbookUrl` points alerts at a published copy). */
export const RUNBOOKS_PATH = 'docs/runbooks.md';

/** The anchor of an alert's section in the runbooks: its `## <alert>` heading, as GitHub renders it. */
const runbookAnchor = (alert: string) => alert.toLowerCase();

/** How far past its deadline an upload may be before AvatarUploadsNotEndedInTime: three passes of the default 5-minute reconciler schedule. */
const OVERDUE_ALERT_SECONDS = 900;

/** The recorded p99 of upload to ready, per namespace (level:metric:operations). */
const END_TO_END_P99 = 'namespace:avatarpipeline_pipeline_end_to_end_seconds:p99_rate15m';

type Alert = Omit<AlertRule, 'annotations'> & { annotations: Omit<AlertRule['annotations'], 'runbook_url'> };

/**
 * The pipeline's alerts and the recording rule they use. Every expression aggregates `by (namespace)`
 * (one release per namespace: an alert names the release it concerns) and uses only metrics a
 * service exports (checked in k8s-tests, which also run the rules in promtool). `runbookUrl` is
 * where docs/runbooks.md is published; each alert links its own section.
 */
export function alertRules(runbookUrl: string = RUNBOOKS_PATH): PrometheusRuleSpec {
  const alerts: Alert[] = [
    {
      alert: 'AvatarEventsDeadLettered',
      expr: 'sum by (namespace, type, stage) (increase(avatarpipeline_deadletter_events_total[15m])) > 0',
      for: '0m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Events exhausted their retries and reached the dead-letter sink',
        description: '{{ $value | humanize }} {{ $labels.type }} events ({{ $labels.stage }}) were dead-lettered in 15 minutes in {{ $labels.namespace }}.',
      },
    },
    {
      alert: 'AvatarModerationErrorRate',
      expr:
        'sum by (namespace) (rate(avatarpipeline_cloudevents_handled_total{service="moderate",outcome="error"}[10m]))' +
        ' / sum by (namespace) (rate(avatarpipeline_cloudevents_handled_total{service="moderate"}[10m])) > 0.05',
      for: '10m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Moderation fails on more than 5% of uploads',
        description: '{{ $value | humanizePercentage }} of moderation events ended in an error (retried by the broker) in {{ $labels.namespace }}.',
      },
    },
    {
      alert: 'AvatarPushFailureRatio',
      expr:
        'sum by (namespace) (rate(avatarpipeline_push_notifications_total{outcome=~"failed|rejected"}[15m]))' +
        ' / sum by (namespace) (rate(avatarpipeline_push_notifications_total{outcome=~"sent|pruned|failed|rejected"}[15m])) > 0.2',
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'More than 20% of Web Push deliveries fail',
        description: '{{ $value | humanizePercentage }} of push deliveries failed or were rejected by push services in {{ $labels.namespace }}.',
      },
    },
    {
      alert: 'AvatarEndToEndLatencyHigh',
      expr: `${END_TO_END_P99} > 30`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Uploads take longer than 30 s to become ready (p99)',
        description: 'The p99 time from upload to ready is {{ $value | humanizeDuration }} in {{ $labels.namespace }}.',
      },
    },
    {
      alert: 'AvatarS3SourceSinkFailures',
      expr: 'sum by (namespace) (increase(avatarpipeline_s3source_sink_failures_total[10m])) > 0',
      for: '10m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'The broker refuses upload notifications',
        description: 's3-source could not hand {{ $value | humanize }} events to the broker in 10 minutes in {{ $labels.namespace }}; uploads stall.',
      },
    },
    {
      // The gauge is a duration itself, so no `for`; last_over_time bridges the gaps while profile is scaled to zero.
      alert: 'AvatarUploadsNotEndedInTime',
      expr: `max by (namespace, status) (last_over_time(avatarpipeline_uploads_overdue_seconds[30m])) > ${OVERDUE_ALERT_SECONDS}`,
      for: '0m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Uploads are still {{ $labels.status }} past their deadline: the reconciler is not ending them',
        description: 'The longest-waiting {{ $labels.status }} upload in {{ $labels.namespace }} is {{ $value | humanizeDuration }} past the deadline by which the reconciler must end it.',
      },
    },
  ];
  return {
    groups: [
      {
        name: 'avatar-pipeline.rules',
        rules: [
          {
            record: END_TO_END_P99,
            expr: 'histogram_quantile(0.99, sum by (namespace, le) (rate(avatarpipeline_pipeline_end_to_end_seconds_bucket[15m])))',
          },
        ],
      },
      {
        name: 'avatar-pipeline.alerts',
        rules: alerts.map((a) => ({ ...a, annotations: { ...a.annotations, runbook_url: `${runbookUrl}#${runbookAnchor(a.alert)}` } })),
      },
    ],
  };
}
