/**
 * Prometheus Operator objects (monitoring.coreos.com/v1, typed by hand) and the alert rules.
 *
 * Scraping: a PodMonitor per service selects its pods by name (Knative's revision pods carry the
 * template's labels; the s3-source poller Deployment is labelled alike) and scrapes the user
 * container's own port (`user-port`: Knative's name for it, and the poller's) directly. The
 * scrape never passes the route, the activator or the queue-proxy, so it is not a request the
 * autoscaler counts and it cannot keep a pod alive or wake a scaled-to-zero service; when a
 * service is at zero there is simply no target (counters restart with each pod: the rules use
 * rate/increase, which handle resets).
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
  annotations: { summary: string; description: string };
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

/** The pipeline's alerts; every metric named here is exported by a service (checked in k8s-tests). */
export function alertRules(): PrometheusRuleSpec {
  return {
    groups: [
      {
        name: 'avatar-pipeline.rules',
        rules: [
          {
            record: 'avatarpipeline:pipeline_end_to_end_seconds:p99_15m',
            expr: 'histogram_quantile(0.99, sum by (le) (rate(pipeline_end_to_end_seconds_bucket[15m])))',
          },
        ],
      },
      {
        name: 'avatar-pipeline.alerts',
        rules: [
          {
            alert: 'AvatarEventsDeadLettered',
            expr: 'sum by (type, stage) (increase(deadletter_events_total[15m])) > 0',
            for: '0m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Events exhausted their retries and reached the dead-letter sink',
              description: '{{ $value | humanize }} {{ $labels.type }} events ({{ $labels.stage }}) were dead-lettered in 15 minutes.',
            },
          },
          {
            alert: 'AvatarModerationErrorRate',
            expr:
              'sum(rate(cloudevents_handled_total{service="moderate",outcome="error"}[10m]))' +
              ' / sum(rate(cloudevents_handled_total{service="moderate"}[10m])) > 0.05',
            for: '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Moderation fails on more than 5% of uploads',
              description: '{{ $value | humanizePercentage }} of moderation events ended in an error (retried by the broker).',
            },
          },
          {
            alert: 'AvatarPushFailureRatio',
            expr:
              'sum(rate(push_notifications_total{outcome=~"failed|rejected"}[15m]))' +
              ' / sum(rate(push_notifications_total{outcome=~"sent|pruned|failed|rejected"}[15m])) > 0.2',
            for: '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'More than 20% of Web Push deliveries fail',
              description: '{{ $value | humanizePercentage }} of push deliveries failed or were rejected by push services.',
            },
          },
          {
            alert: 'AvatarEndToEndLatencyHigh',
            expr: 'avatarpipeline:pipeline_end_to_end_seconds:p99_15m > 30',
            for: '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Uploads take longer than 30 s to become ready (p99)',
              description: 'The p99 time from upload to ready is {{ $value | humanizeDuration }}.',
            },
          },
          {
            alert: 'AvatarS3SourceSinkFailures',
            expr: 'sum(increase(s3source_sink_failures_total[10m])) > 0',
            for: '10m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The broker refuses upload notifications',
              description: 's3-source could not hand {{ $value | humanize }} events to the broker in 10 minutes; uploads stall.',
            },
          },
        ],
      },
    ],
  };
}
