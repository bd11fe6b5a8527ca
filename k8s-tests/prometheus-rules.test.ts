/**
 * The alert and recording rules the chart renders, in Prometheus' own rule engine (promtool, see
 * support/promtool.ts): `check rules` accepts them, and unit tests feed series shaped as the
 * services export them (with the labels the PodMonitors add) and expect exactly the alerts, per
 * namespace, with their rendered annotations and runbook links.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { EventType, S3_OBJECT_CREATED_PREFIX } from '@avatar-pipeline/kit/topology';
import { goTool } from './support/go-tools.js';
import { renderedEnvironments } from './support/helm.js';
import { ofKind, valueAt, type K8sObject } from './support/manifests.js';
import { promtool, seriesOf, testRules, type ExpectedAlert, type InputSeries, type RuleTest } from './support/promtool.js';

type AlertRule = { alert: string; labels: Record<string, string> };
type RuleGroups = { name: string; rules: (AlertRule | { record: string })[] }[];

beforeAll(async () => {
  await goTool('promtool');
}, 20 * 60_000);

const environments = await renderedEnvironments();
const groupsOf = (objects: readonly K8sObject[]) => (ofKind(objects, 'monitoring.coreos.com/v1', 'PrometheusRule')[0] as unknown as { spec: { groups: RuleGroups } }).spec.groups;
const env = environments[0]!;
const groups = groupsOf(env.objects);
const alertRules = groups.flatMap((g) => g.rules).filter((r): r is AlertRule => 'alert' in r);
const runbookUrl = valueAt(env.values, 'monitoring', 'runbookUrl') as string;

/** Two releases, so every test also shows that an alert names the namespace it concerns and no other. */
const A = 'avatar-a';
const B = 'avatar-b';
const pod = (namespace: string, service: string) => ({ namespace, service, pod: `${service}-00001-deployment-5d8f7-x2x9q`, job: `${namespace}/${service}` });

/** An alert as Alertmanager would get it: the rule's severity and runbook link, the labels it groups by, its rendered texts. */
function alert(name: string, labels: Record<string, string>, texts: { summary: string; description: string }): ExpectedAlert {
  const rule = alertRules.find((r) => r.alert === name);
  if (!rule) throw new Error(`no alert ${name}`);
  return { exp_labels: { ...rule.labels, ...labels }, exp_annotations: { ...texts, runbook_url: `${runbookUrl}#${name.toLowerCase()}` } };
}

/** Runs one promtool unit test and expects it to pass. */
async function expectRules(test: RuleTest): Promise<void> {
  const result = await testRules(groups, [test]);
  expect(result.output).toContain('SUCCESS');
  expect(result.code).toBe(0);
}

describe('promtool', () => {
  it.each(environments.map((e) => [e.name, e] as const))('check rules accepts the rules the chart renders for %s', async (_name, rendered) => {
    const result = await promtool({ 'rules.yaml': stringify({ groups: groupsOf(rendered.objects) }) }, ['check', 'rules', '--lint=all', '--lint-fatal', 'rules.yaml']);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.code).toBe(0);
  });

  it('fails a rule test whose expectation is wrong (the harness can fail)', async () => {
    const result = await testRules(groups, [
      {
        interval: '30s',
        input_series: [],
        alert_rule_test: [{ eval_time: '1m', alertname: 'AvatarEventsDeadLettered', exp_alerts: [alert('AvatarEventsDeadLettered', { namespace: A }, { summary: '', description: '' })] }],
      },
    ]);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/FAILED/);
  });
});

describe('AvatarEventsDeadLettered', () => {
  const deadLetters = (namespace: string, values: string): InputSeries => ({
    series: seriesOf('avatarpipeline_deadletter_events_total', { ...pod(namespace, 'profile'), type: EventType.approved, stage: 'processing', outcome: 'failed' }),
    values,
  });
  const fired = alert(
    'AvatarEventsDeadLettered',
    { namespace: A, type: EventType.approved, stage: 'processing' },
    {
      summary: 'Events exhausted their retries and reached the dead-letter sink',
      description: `1 ${EventType.approved} events (processing) were dead-lettered in 15 minutes in ${A}.`,
    },
  );

  it('fires on the first dead letter of a pod that just started, since the pod exported the series at 0 before it', async () => {
    await expectRules({
      interval: '30s',
      // Scraped at 0 when the pod started, then the dead letter; the other release's pod has none.
      input_series: [deadLetters(A, '0 1x40'), deadLetters(B, '0x40')],
      alert_rule_test: [
        { eval_time: '0m', alertname: 'AvatarEventsDeadLettered', exp_alerts: [] },
        { eval_time: '1m', alertname: 'AvatarEventsDeadLettered', exp_alerts: [fired] },
        { eval_time: '16m', alertname: 'AvatarEventsDeadLettered', exp_alerts: [] },
      ],
    });
  });

  it('would miss it if the series first appeared at 1 (why every counter starts at 0)', async () => {
    await expectRules({
      interval: '30s',
      input_series: [deadLetters(A, '1x40')],
      alert_rule_test: [1, 5, 10].map((m) => ({ eval_time: `${m}m`, alertname: 'AvatarEventsDeadLettered', exp_alerts: [] })),
    });
  });
});

describe('the ratio and latency alerts', () => {
  it('AvatarModerationErrorRate fires per namespace after 10 minutes above 5%', async () => {
    const handled = (namespace: string, outcome: string, values: string): InputSeries => ({
      series: seriesOf('avatarpipeline_cloudevents_handled_total', { ...pod(namespace, 'moderate'), type: `${S3_OBJECT_CREATED_PREFIX}*`, outcome }),
      values,
    });
    await expectRules({
      interval: '30s',
      // A: 1 error a minute for 9 replies (10%); B: no errors.
      input_series: [handled(A, 'error', '0+0.5x80'), handled(A, 'reply', '0+4.5x80'), handled(B, 'error', '0x80'), handled(B, 'reply', '0+5x80')],
      alert_rule_test: [
        { eval_time: '9m', alertname: 'AvatarModerationErrorRate', exp_alerts: [] },
        {
          eval_time: '25m',
          alertname: 'AvatarModerationErrorRate',
          exp_alerts: [
            alert('AvatarModerationErrorRate', { namespace: A }, { summary: 'Moderation fails on more than 5% of uploads', description: `10% of moderation events ended in an error (retried by the broker) in ${A}.` }),
          ],
        },
      ],
    });
  });

  it('AvatarPushFailureRatio fires per namespace after 15 minutes above 20%', async () => {
    const notifications = (namespace: string, outcome: string, values: string): InputSeries => ({
      series: seriesOf('avatarpipeline_push_notifications_total', { ...pod(namespace, 'push'), outcome, status_class: outcome === 'sent' ? '2xx' : '5xx' }),
      values,
    });
    await expectRules({
      interval: '30s',
      input_series: [notifications(A, 'sent', '0+3.5x100'), notifications(A, 'failed', '0+1.5x100'), notifications(B, 'sent', '0+5x100'), notifications(B, 'failed', '0x100')],
      alert_rule_test: [
        {
          eval_time: '35m',
          alertname: 'AvatarPushFailureRatio',
          exp_alerts: [alert('AvatarPushFailureRatio', { namespace: A }, { summary: 'More than 20% of Web Push deliveries fail', description: `30% of push deliveries failed or were rejected by push services in ${A}.` })],
        },
      ],
    });
  });

  it('AvatarEndToEndLatencyHigh fires per namespace on the recorded p99', async () => {
    const bucket = (namespace: string, le: string, values: string): InputSeries => ({
      series: seriesOf('avatarpipeline_pipeline_end_to_end_seconds_bucket', { ...pod(namespace, 'profile'), le }),
      values,
    });
    await expectRules({
      interval: '30s',
      // A: every upload between 30 and 45 s; B: every upload under 5 s.
      input_series: [
        ...['5', '30'].map((le) => bucket(A, le, '0x100')),
        ...['45', '+Inf'].map((le) => bucket(A, le, '0+1x100')),
        ...['5', '30', '45', '+Inf'].map((le) => bucket(B, le, '0+1x100')),
      ],
      alert_rule_test: [
        {
          eval_time: '35m',
          alertname: 'AvatarEndToEndLatencyHigh',
          exp_alerts: [alert('AvatarEndToEndLatencyHigh', { namespace: A }, { summary: 'Uploads take longer than 30 s to become ready (p99)', description: `The p99 time from upload to ready is 44.85s in ${A}.` })],
        },
      ],
    });
  });

  it('AvatarS3SourceSinkFailures fires per namespace after 10 minutes of refusals', async () => {
    const failures = (namespace: string, values: string): InputSeries => ({ series: seriesOf('avatarpipeline_s3source_sink_failures_total', pod(namespace, 's3-source')), values });
    await expectRules({
      interval: '30s',
      input_series: [failures(A, '0+0.1x80'), failures(B, '0x80')],
      alert_rule_test: [
        {
          eval_time: '25m',
          alertname: 'AvatarS3SourceSinkFailures',
          exp_alerts: [
            alert('AvatarS3SourceSinkFailures', { namespace: A }, { summary: 'The broker refuses upload notifications', description: `s3-source could not hand 2 events to the broker in 10 minutes in ${A}; uploads stall.` }),
          ],
        },
      ],
    });
  });
});

describe('AvatarUploadsNotEndedInTime', () => {
  const overdue = (namespace: string, status: string, values: string): InputSeries => ({
    series: seriesOf('avatarpipeline_uploads_overdue_seconds', { ...pod(namespace, 'profile'), status }),
    values,
  });
  const firing = (seconds: string) =>
    alert(
      'AvatarUploadsNotEndedInTime',
      { namespace: A, status: 'processing' },
      {
        summary: 'Uploads are still processing past their deadline: the reconciler is not ending them',
        description: `The longest-waiting processing upload in ${A} is ${seconds} past the deadline by which the reconciler must end it.`,
      },
    );

  it('fires once an upload is 15 minutes past its deadline, in its namespace and status only', async () => {
    await expectRules({
      interval: '30s',
      // A: an upload passes its deadline at 5 min and is not ended; B's reconciler keeps up.
      input_series: [overdue(A, 'processing', '0x10 30+30x40'), overdue(A, 'pending', '0x50'), overdue(B, 'processing', '0x50')],
      alert_rule_test: [
        { eval_time: '20m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [] },
        { eval_time: '21m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [firing('16m 0s')] },
      ],
    });
  });

  it('keeps firing while profile is scaled to zero (no samples) for up to 30 minutes, and resolves on the first sample at 0', async () => {
    const scaledToZero = (after: string) => overdue(A, 'processing', `1200 stale ${after}`);
    // Scraped at 20 min overdue, then profile scales to zero (a stale marker, no samples); either
    // nothing scrapes it again, or a pod scrapes 0 at 12 min (the reconciler ended the upload).
    await expectRules({
      interval: '1m',
      input_series: [scaledToZero('_x40')],
      alert_rule_test: [
        { eval_time: '0m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [firing('20m 0s')] },
        { eval_time: '29m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [firing('20m 0s')] },
        { eval_time: '31m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [] },
      ],
    });
    await expectRules({
      interval: '1m',
      input_series: [scaledToZero('_x10 0x5')],
      alert_rule_test: [
        { eval_time: '11m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [firing('20m 0s')] },
        { eval_time: '12m', alertname: 'AvatarUploadsNotEndedInTime', exp_alerts: [] },
      ],
    });
  });
});
