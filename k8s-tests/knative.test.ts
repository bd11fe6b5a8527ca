/**
 * The chart, rendered by the real helm with each environment's values, through Knative's own
 * admission code: k8s-tests/go/knative builds Knative Serving and Eventing 1.21 (the release
 * docs/deploy.md installs) into a command that decodes every Knative object, defaults and validates it as
 * the webhooks do on CREATE, with the ConfigMaps the release installs. Broken copies of the
 * chart's own objects must come back refused with Knative's words.
 *
 * eks runs Knative's Kafka broker (eventing-kafka-broker). Its Brokers also go through that
 * project's Broker validation, and with -kafka-config their spec.config ConfigMap (rendered in the
 * same stream) is read the way its Broker controller reads it before contacting Kafka (partitions,
 * replication factor, bootstrap servers). Those two checks are a port of eventing-kafka-broker's
 * knative-v1.21.0 source into the command (k8s-tests/go/knative/kafka.go), not its compiled code:
 * that module is not served by the Go module proxy. The messages are its own.
 * The first run builds the command (minutes with a cold Go cache); later runs take a second.
 */
import { execFile } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { environmentNames, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { goTool } from './support/go-tools.js';
import { renderChart } from './support/helm.js';
import { clone, environmentValues, parseObjects, valueAt, type K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 20 * 60_000;
/** Each environment as `helm template` renders the chart with its values (the real helm, built like the validator). */
const rendered = Object.fromEntries(await Promise.all(environmentNames.map(async (env) => [env, await renderChart(env)] as const))) as Record<EnvironmentName, string>;

interface Admission {
  file: string;
  kind: string;
  apiVersion: string;
  name: string;
  namespace: string;
  result: 'accepted' | 'refused' | 'skipped';
  errors: string;
  warnings?: string[];
  /** With -kafka-config, for an accepted Broker of a Kafka class: why the Kafka broker's controller could not use its ConfigMap. */
  config?: string;
}

let binary: string;

/** Runs the validator on files, or on a YAML stream through stdin (`-`); exit 0 or 1 both report. */
function admit(args: string[], stdin = ''): Promise<{ code: number; results: Admission[] }> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      if (code !== 0 && code !== 1) return reject(new Error(`${binary} ${args.join(' ')} exited ${String(code)}: ${stderr}`));
      resolve({ code, results: stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Admission) });
    });
    child.stdin?.end(stdin);
  });
}

const isKnative = (o: { apiVersion: string }) => /(^|\.)knative\.dev\//.test(o.apiVersion);
const chartObjects = (env: EnvironmentName) => parseObjects(rendered[env]);
const named = (objects: K8sObject[], apiVersion: string, kind: string, pick: (o: K8sObject) => boolean = () => true): K8sObject => {
  const found = objects.find((o) => o.apiVersion === apiVersion && o.kind === kind && pick(o));
  if (!found) throw new Error(`the chart has no ${kind} to break`);
  return clone(found);
};
const names = (results: readonly Admission[], kind: string) => results.filter((r) => r.kind === kind).map((r) => r.name).sort();

/** What each environment has of Knative: the Brokers' class, and which services are Knative Services. */
const expectedKnative: Record<EnvironmentName, { brokerClass: string; services: string[] }> = {
  kind: { brokerClass: 'MTChannelBasedBroker', services: ['moderate', 'presign', 'profile', 'push', 's3-source', 'subscribe', 'thumbnail'] },
  // s3-source polls SQS on eks: a Deployment, not a Knative Service.
  eks: { brokerClass: 'Kafka', services: ['moderate', 'presign', 'profile', 'push', 'subscribe', 'thumbnail'] },
};
const TRIGGERS = ['moderate-uploads', 'profile-dead-letters', 'profile-thumbnailed', 'push-expired', 'push-failed', 'push-ready', 'push-rejected', 'push-review-requested', 'thumbnail-approved'];
/** The services' (by name) and the reconciler CronJob's (its Jobs, by label). */
const SINK_BINDINGS = ['profile-to-broker', 'reconciler-to-broker', 's3-source-to-broker'];
const BROKERS = ['avatar-pipeline', 'avatar-pipeline-dead-letter'];
const BROKER_CONFIG = 'avatar-pipeline-broker';

beforeAll(async () => {
  binary = await goTool('knative-validate');
}, BUILD_TIMEOUT_MS);

describe.each(environmentNames.map((env) => [env]))('the %s chart under Knative 1.21 admission', (env) => {
  it('has every Knative object defaulted and accepted, with no warnings, and every Kafka Broker’s ConfigMap usable', async () => {
    const { code, results } = await admit(['-kafka-config', '-'], rendered[env]);
    const checked = results.filter((r) => r.result !== 'skipped');
    // Every Knative object of the chart was checked, none silently skipped.
    const expected = chartObjects(env).filter(isKnative);
    expect(checked.map((r) => `${r.kind}/${r.name}`).sort()).toEqual(expected.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    expect(checked.filter((r) => r.result === 'refused').map((r) => `${r.kind}/${r.name}: ${r.errors}`)).toEqual([]);
    expect(checked.flatMap((r) => (r.warnings ?? []).map((w) => `${r.kind}/${r.name}: ${w}`))).toEqual([]);
    expect(results.filter((r) => r.config).map((r) => `${r.kind}/${r.name}: ${r.config}`)).toEqual([]);
    expect(code).toBe(0);
  });

  it('has the two Brokers (of the environment’s class, on the ConfigMap beside them), the Triggers, SinkBindings and Knative Services it should', async () => {
    const { results } = await admit(['-'], rendered[env]);
    const { brokerClass, services } = expectedKnative[env];
    expect(names(results, 'Broker')).toEqual(BROKERS);
    expect(names(results, 'Trigger')).toEqual(TRIGGERS);
    expect(names(results, 'SinkBinding')).toEqual(SINK_BINDINGS);
    expect(names(results.filter((r) => r.apiVersion === 'serving.knative.dev/v1'), 'Service')).toEqual(services);
    expect(results.filter((r) => r.result !== 'skipped')).toHaveLength(BROKERS.length + TRIGGERS.length + SINK_BINDINGS.length + services.length);
    const objects = chartObjects(env);
    for (const name of BROKERS) {
      const broker = named(objects, 'eventing.knative.dev/v1', 'Broker', (o) => o.metadata.name === name);
      expect(broker.metadata.annotations?.['eventing.knative.dev/broker.class'], name).toBe(brokerClass);
      expect((broker as unknown as { spec: { config: unknown } }).spec.config, name).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', name: BROKER_CONFIG, namespace: broker.metadata.namespace });
    }
    const has = (apiVersion: string, kind: string, name: string) => objects.some((o) => o.apiVersion === apiVersion && o.kind === kind && o.metadata.name === name);
    expect(has('v1', 'ConfigMap', BROKER_CONFIG)).toBe(true);
    expect(has('apps/v1', 'Deployment', 's3-source')).toBe(env === 'eks');
  });
});

describe('Knative 1.21 admission on broken copies of the chart objects', () => {
  const objects = chartObjects('kind');
  const service = () => named(objects, 'serving.knative.dev/v1', 'Service');
  const spec = (s: K8sObject) => (s as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } }).spec.template.spec;
  type Filter = Record<string, Record<string, string> | unknown[]>;
  const filters = (t: K8sObject) => (t as unknown as { spec: { filters: Filter[] } }).spec;
  /** A Trigger with filters (profile-dead-letters, on the dead-letter Broker, takes every event). */
  const trigger = () => named(objects, 'eventing.knative.dev/v1', 'Trigger', (t) => (filters(t).filters ?? []).length > 0);
  /** The attributes of the Trigger's first exact or prefix filter ({type, subject} today). */
  const attributes = (t: K8sObject): Record<string, string> => {
    const first = filters(t).filters[0] ?? {};
    const found = (first['exact'] ?? first['prefix']) as Record<string, string> | undefined;
    if (!found || Object.keys(found).length === 0) throw new Error(`${t.metadata.name} has no exact or prefix filter to break`);
    return found;
  };
  const [attribute = '', value = ''] = Object.entries(attributes(trigger()))[0] ?? [];

  const broken: [string, () => K8sObject, string][] = [
    [
      'a filter with two dialects (prefix and exact)',
      () => {
        const t = trigger();
        filters(t).filters = [{ prefix: attributes(t), exact: { id: 'x' } }];
        return t;
      },
      'multiple dialects found, filters can have only one dialect set',
    ],
    [
      'an exact filter on an attribute name outside ^[a-z][a-z0-9]*$',
      () => {
        const t = trigger();
        filters(t).filters = [{ exact: { [`ce-${attribute}`]: value } }];
        return t;
      },
      `invalid key name "ce-${attribute}": spec.filters[0].exact[ce-${attribute}]\nAttribute name must start with a letter and can only contain lowercase alphanumeric`,
    ],
    [
      'hostNetwork on the pod',
      () => {
        const s = service();
        spec(s)['hostNetwork'] = true;
        return s;
      },
      'must not set the field(s): spec.template.spec.hostNetwork',
    ],
    [
      'stdin on the container',
      () => {
        const s = service();
        spec(s).containers[0]!['stdin'] = true;
        return s;
      },
      'must not set the field(s): spec.template.spec.containers[0].stdin',
    ],
    [
      'a second container port',
      () => {
        const s = service();
        (spec(s).containers[0]!['ports'] as unknown[]).push({ name: 'metrics', containerPort: 9464 });
        return s;
      },
      'more than one container port is set: spec.template.spec.containers[*].ports\nOnly a single port is allowed across all containers',
    ],
    [
      'an unknown field in the Service spec (a misspelt containerConcurrency)',
      () => {
        const s = service();
        spec(s)['containerConcurency'] = 10;
        return s;
      },
      'cannot decode incoming new object: json: unknown field "containerConcurency"',
    ],
    [
      'an unknown field in the Trigger spec',
      () => {
        const t = trigger();
        (t as unknown as { spec: Record<string, unknown> }).spec['filter_'] = {};
        return t;
      },
      'cannot decode incoming new object: json: unknown field "filter_"',
    ],
    [
      'a kind Knative does not have',
      () => ({ ...trigger(), kind: 'Triggers' }),
      'unhandled kind: eventing.knative.dev/v1, Kind=Triggers',
    ],
  ];

  it.each(broken)('refuses %s', async (_, make, message) => {
    const object = make();
    const { code, results } = await admit(['-'], stringify(object));
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ file: '-', kind: object.kind, name: object.metadata.name, result: 'refused' });
    expect(results[0]?.errors).toContain(message);
    expect(code).toBe(1);
  });

  // Knative 1.21 has no one-key rule any more ("Multiple items found, can have only one key-value"
  // was removed from eventing's Trigger validation before v0.47) and no minimum for all/any: its
  // broker requires every key of an exact/prefix filter to match, and an empty all passes.
  it.each([
    ['a prefix filter on two attributes', { prefix: { ...attributes(trigger()), ...(attribute === 'source' ? { subject: 'uploads/' } : { source: 'minio' }) } }],
    ['an empty all', { all: [] }],
  ])('accepts %s', async (_, filter: Filter) => {
    const t = trigger();
    filters(t).filters = [filter];
    const { code, results } = await admit(['-'], stringify(t));
    expect(results.map((r) => [r.name, r.result, r.errors])).toEqual([[t.metadata.name, 'accepted', '']]);
    expect(code).toBe(0);
  });

  it('skips objects outside knative.dev, and reports every document of a stream', async () => {
    const stream = [named(objects, 'v1', 'ServiceAccount'), trigger()].map((o) => stringify(o)).join('---\n');
    const { code, results } = await admit(['-'], stream);
    expect(results.map((r) => [r.kind, r.result])).toEqual([
      ['ServiceAccount', 'skipped'],
      ['Trigger', 'accepted'],
    ]);
    expect(code).toBe(0);
  });
});

// eventing-kafka-broker's Broker validation and its controller's reading of spec.config, as ported
// into the command (kafka.go: its source, not its compiled code; the module proxy does not serve it).
describe('the Kafka broker’s checks on broken copies of the eks Brokers and their ConfigMap', () => {
  const objects = chartObjects('eks');
  const broker = () => named(objects, 'eventing.knative.dev/v1', 'Broker', (o) => o.metadata.name === 'avatar-pipeline');
  const configMap = () => named(objects, 'v1', 'ConfigMap', (o) => o.metadata.name === BROKER_CONFIG);
  const data = (o: K8sObject) => (o as unknown as { data: Record<string, string> }).data;
  const config = (b: K8sObject) => (b as unknown as { spec: { config: Record<string, string> } }).spec.config;
  const values = valueAt(environmentValues('eks'), 'broker', 'config') as Record<string, string>;
  const servers = (values['bootstrap.servers'] ?? '').split(',').map((s) => s.trim());
  const stream = (...docs: K8sObject[]) => docs.map((o) => stringify(o)).join('---\n');
  const brokerLine = (results: Admission[]) => results.find((r) => r.kind === 'Broker');

  it('reads the ConfigMap the chart renders from values-eks.yaml’s broker.config as usable, before or after the Broker', async () => {
    expect(servers.length).toBeGreaterThan(0);
    for (const input of [stream(broker(), configMap()), stream(configMap(), broker())]) {
      const { code, results } = await admit(['-kafka-config', '-'], input);
      expect(results.map((r) => [r.kind, r.result, r.errors, r.config]).sort()).toEqual([
        ['Broker', 'accepted', '', undefined],
        ['ConfigMap', 'skipped', '', undefined],
      ]);
      expect(code).toBe(0);
    }
  });

  it.each([
    [
      'a ConfigMap without bootstrap.servers',
      (d: Record<string, string>) => delete d['bootstrap.servers'],
      () => `invalid configuration - numPartitions: ${values['default.topic.partitions']} - replicationFactor: ${values['default.topic.replication.factor']} - bootstrapServers: []`,
    ],
    [
      'a ConfigMap with default.topic.partitions "0"',
      (d: Record<string, string>) => (d['default.topic.partitions'] = '0'),
      () => `invalid configuration - numPartitions: 0 - replicationFactor: ${values['default.topic.replication.factor']} - bootstrapServers: [${servers.join(' ')}]`,
    ],
    [
      'a ConfigMap with default.topic.replication.factor "three"',
      (d: Record<string, string>) => (d['default.topic.replication.factor'] = 'three'),
      () => `failed to parse config map avatar-pipeline/${BROKER_CONFIG}: failed to parse "default.topic.replication.factor": strconv.ParseInt: parsing "three": invalid syntax`,
    ],
  ])('reports %s through `config` (admitted, exit status 1)', async (_, breakData, message) => {
    const cm = configMap();
    breakData(data(cm));
    const { code, results } = await admit(['-kafka-config', '-'], stream(broker(), cm));
    const line = brokerLine(results);
    expect(line).toMatchObject({ name: 'avatar-pipeline', result: 'accepted', errors: '' });
    expect(line?.config).toContain('unable to build topic config from configmap: ');
    expect(line?.config).toContain(message());
    expect(code).toBe(1);
    // Without -kafka-config the ConfigMap is not read: admission alone does not see it.
    const plain = await admit(['-'], stream(broker(), cm));
    expect(brokerLine(plain.results)).toMatchObject({ result: 'accepted', errors: '' });
    expect(brokerLine(plain.results)?.config).toBeUndefined();
    expect(plain.code).toBe(0);
  });

  it('reports a Broker whose ConfigMap is not in the input as the controller finds it: missing', async () => {
    const { code, results } = await admit(['-kafka-config', '-'], stream(broker()));
    expect(results.map((r) => [r.name, r.result, r.config])).toEqual([['avatar-pipeline', 'accepted', `unable to rebuild topic config, failed to get configmap avatar-pipeline/${BROKER_CONFIG}`]]);
    expect(code).toBe(1);
  });

  it('does not read the ConfigMap of a Broker of another class (kind’s MTChannelBasedBroker)', async () => {
    const mt = named(chartObjects('kind'), 'eventing.knative.dev/v1', 'Broker', (o) => o.metadata.name === 'avatar-pipeline');
    const { code, results } = await admit(['-kafka-config', '-'], stream(mt));
    expect(results.map((r) => [r.name, r.result, r.config])).toEqual([['avatar-pipeline', 'accepted', undefined]]);
    expect(code).toBe(0);
  });

  it.each([
    [
      'a Kafka Broker configured by a Secret',
      (b: K8sObject) => Object.assign(config(b), { kind: 'Secret' }),
      'invalid value: Secret: spec.config.kind\nExpected ConfigMap',
    ],
    [
      'a KafkaNamespaced Broker with its ConfigMap in another namespace',
      (b: K8sObject) => {
        b.metadata.annotations = { ...b.metadata.annotations, 'eventing.knative.dev/broker.class': 'KafkaNamespaced' };
        config(b)['namespace'] = 'elsewhere';
      },
      'invalid value: elsewhere: spec.config.namespace\nExpected ConfigMap in same namespace with broker resource',
    ],
  ])('refuses %s with the Kafka broker webhook’s words', async (_, breakBroker, message) => {
    const b = broker();
    breakBroker(b);
    const { code, results } = await admit(['-kafka-config', '-'], stream(b, configMap()));
    expect(brokerLine(results)).toMatchObject({ name: 'avatar-pipeline', result: 'refused', errors: message });
    expect(code).toBe(1);
  });
});
