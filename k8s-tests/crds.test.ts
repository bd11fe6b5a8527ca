/**
 * The custom resources the charts are gaining, checked by the real deciders: KEDA's ScaledObject
 * and TriggerAuthentication by a real kube-apiserver with KEDA's own CRDs (schemas and CEL rules,
 * strict field validation), and a Broker of class Kafka by knative-validate, which runs
 * eventing-kafka-broker's webhook validation and reads the Broker's ConfigMap as its controller does.
 * The first run builds the binaries (minutes); later runs take seconds.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Cluster } from './support/cluster.js';
import { chartCrdFiles, startControlPlane, type ControlPlane } from './support/control-plane.js';
import { goTool } from './support/go-tools.js';
import type { K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const clone = <T>(value: T): T => structuredClone(value);
const NAMESPACE = 'media';

const triggerAuthentication: K8sObject = {
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'TriggerAuthentication',
  metadata: { name: 's3-source-sqs', namespace: NAMESPACE },
  // The scaled workload's own AWS identity (EKS Pod Identity or IRSA) reads the queue's depth.
  spec: { podIdentity: { provider: 'aws', identityOwner: 'workload' } },
};

const scaledObject: K8sObject = {
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name: 's3-source', namespace: NAMESPACE },
  spec: {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 's3-source' },
    minReplicaCount: 1,
    maxReplicaCount: 10,
    pollingInterval: 15,
    cooldownPeriod: 120,
    triggers: [
      {
        type: 'aws-sqs-queue',
        authenticationRef: { name: 's3-source-sqs' },
        metadata: { queueURL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/uploads', queueLength: '5', awsRegion: 'eu-west-1' },
      },
    ],
  },
};

/** A Kafka-class Broker's ConfigMap as eventing-kafka-broker documents it (MSK bootstrap servers, IAM port). */
const configMap = (data: Record<string, string> = {}): K8sObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'kafka-broker-config' },
  data: {
    'bootstrap.servers': 'b-1.msk.example:9098,b-2.msk.example:9098',
    'default.topic.partitions': '6',
    'default.topic.replication.factor': '3',
    'auth.secret.ref.name': 'kafka-auth',
    ...data,
  },
});
const broker = (name: string, config: Record<string, string> = {}, more: Record<string, unknown> = {}): K8sObject => ({
  apiVersion: 'eventing.knative.dev/v1',
  kind: 'Broker',
  metadata: { name, annotations: { 'eventing.knative.dev/broker.class': 'Kafka' } },
  spec: { config: { apiVersion: 'v1', kind: 'ConfigMap', name: 'kafka-broker-config', ...config }, ...more },
});
const deadLetterSink = { ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'dead-letters' } };
const events = () => broker('events', {}, { delivery: { deadLetterSink, retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S' } });
const trigger: K8sObject = {
  apiVersion: 'eventing.knative.dev/v1',
  kind: 'Trigger',
  metadata: { name: 'on-upload', annotations: { 'kafka.eventing.knative.dev/delivery.order': 'ordered' } },
  spec: { broker: 'events', filter: { attributes: { type: 'com.example.upload' } }, subscriber: { uri: 'http://moderate.media.svc.cluster.local' } },
};

type Spec = Record<string, unknown> & { triggers: Record<string, unknown>[] };
const spec = (o: K8sObject) => (o as unknown as { spec: Spec }).spec;

describe('KEDA and Kafka-broker objects on a real API server with the CRDs of the charts', () => {
  let controlPlane: ControlPlane | undefined;
  let cluster: Cluster;

  beforeAll(async () => {
    const [crdFiles] = await Promise.all([chartCrdFiles(), goTool('etcd'), goTool('kube-apiserver')]);
    controlPlane = await startControlPlane();
    cluster = new Cluster(controlPlane);
    await cluster.discover();
    await cluster.installCrds(crdFiles);
    const ns = await cluster.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    expect(ns.status).toBeLessThan(300);
  }, BUILD_TIMEOUT_MS);
  afterAll(async () => {
    await controlPlane?.stop();
  });

  it('serves ScaledObject, TriggerAuthentication and ClusterTriggerAuthentication', async () => {
    const groups = await controlPlane!.request('GET', '/apis/keda.sh/v1alpha1');
    const resources = (groups.body.resources as { name: string; kind: string }[]).filter((r) => !r.name.includes('/'));
    expect(resources.map((r) => r.kind).sort()).toEqual(['ClusterTriggerAuthentication', 'ScaledObject', 'TriggerAuthentication']);
  });

  it('accepts an SQS-driven ScaledObject and its pod-identity TriggerAuthentication, with no warnings', async () => {
    const result = await cluster.applyAll([triggerAuthentication, scaledObject]);
    expect(result.refused).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  // Schema and CEL violations are 422 Invalid; a value of the wrong type or a field the schema does
  // not declare already fails server-side apply's typed merge (500, as kubectl --server-side shows).
  const broken: [string, () => K8sObject, number, string][] = [
    [
      'minReplicaCount above maxReplicaCount (the CRD CEL rule)',
      () => {
        const o = clone(scaledObject);
        Object.assign(spec(o), { minReplicaCount: 5, maxReplicaCount: 2 });
        return o;
      },
      422,
      'spec: Invalid value: "object": minReplicaCount must be less than or equal to maxReplicaCount',
    ],
    [
      'a trigger metadata value that is a number, not a string',
      () => {
        const o = clone(scaledObject);
        (spec(o).triggers[0]!['metadata'] as Record<string, unknown>)['queueLength'] = 5;
        return o;
      },
      500,
      '.spec.triggers[0].metadata.queueLength: expected string, got &value.valueUnstructured{Value:5}',
    ],
    [
      'a misspelt authenticationRef',
      () => {
        const o = clone(scaledObject);
        const trigger = spec(o).triggers[0]!;
        trigger['authRef'] = trigger['authenticationRef'];
        delete trigger['authenticationRef'];
        return o;
      },
      500,
      '.spec.triggers[0].authRef: field not declared in schema',
    ],
    [
      'a ScaledObject with no triggers',
      () => {
        const o = clone(scaledObject);
        spec(o).triggers = [];
        return o;
      },
      422,
      'spec.triggers: Invalid value: 0: spec.triggers in body should have at least 1 items',
    ],
    [
      'a pod identity provider KEDA does not know',
      () => {
        const o = clone(triggerAuthentication);
        (o as unknown as { spec: { podIdentity: { provider: string } } }).spec.podIdentity.provider = 'aws-iam';
        return o;
      },
      422,
      'spec.podIdentity.provider: Unsupported value: "aws-iam": supported values: "azure-workload", "gcp", "aws", "aws-eks", "none"',
    ],
  ];

  it('stores Brokers of class Kafka, their ConfigMap and a Trigger (the Eventing CRDs), with no warnings', async () => {
    const objects = [configMap(), events(), broker('dead-letters'), trigger].map((o) => ({ ...o, metadata: { ...o.metadata, namespace: NAMESPACE } }));
    const result = await cluster.applyAll(objects);
    expect(result.refused).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  it.each(broken)('refuses %s', async (_, make, status, message) => {
    const object = make();
    const res = await cluster.apply({ ...object, metadata: { ...object.metadata, name: `${object.metadata.name}-broken` } }, { dryRun: true });
    expect(res.status).toBe(status);
    expect(res.body.message).toContain(message);
  });
});

interface Admission {
  kind: string;
  name: string;
  result: 'accepted' | 'refused' | 'skipped';
  errors: string;
  warnings?: string[];
  config?: string;
}

describe('a Broker of class Kafka under Knative 1.21 and eventing-kafka-broker 1.21', () => {
  let binary: string;
  beforeAll(async () => {
    binary = await goTool('knative-validate');
  }, BUILD_TIMEOUT_MS);

  /** knative-validate -kafka-config over a YAML stream; exit 0 or 1 both report. */
  const validate = (objects: K8sObject[]) =>
    new Promise<{ code: number; results: Admission[] }>((resolve, reject) => {
      const child = execFile(binary, ['-namespace', NAMESPACE, '-kafka-config', '-'], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        if (code !== 0 && code !== 1) return reject(new Error(`knative-validate exited ${String(code)}: ${stderr}`));
        resolve({ code, results: stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Admission) });
      });
      child.stdin?.end(objects.map((o) => stringify(o)).join('---\n'));
    });

  it('admits the Brokers and Trigger and resolves their ConfigMap', async () => {
    const { code, results } = await validate([configMap(), events(), broker('dead-letters'), trigger]);
    expect(results.map((r) => `${r.kind}/${r.name} ${r.result} ${r.errors}${r.config ?? ''}`)).toEqual([
      'ConfigMap/kafka-broker-config skipped ',
      'Broker/events accepted ',
      'Broker/dead-letters accepted ',
      'Trigger/on-upload accepted ',
    ]);
    expect(results.flatMap((r) => r.warnings ?? [])).toEqual([]);
    expect(code).toBe(0);
  });

  it('refuses a Kafka Broker whose config is not a ConfigMap (the Kafka webhook)', async () => {
    const { code, results } = await validate([configMap(), broker('events', { kind: 'Secret' })]);
    expect(results[1]).toMatchObject({ result: 'refused', errors: 'invalid value: Secret: spec.config.kind\nExpected ConfigMap' });
    expect(code).toBe(1);
  });

  const badConfigs: [string, K8sObject[], string][] = [
    [
      'a replication factor of 0',
      [configMap({ 'default.topic.replication.factor': '0' }), broker('events')],
      'unable to build topic config from configmap: error validating topic config from configmap invalid configuration - numPartitions: 6 - replicationFactor: 0 - bootstrapServers: [b-1.msk.example:9098 b-2.msk.example:9098]',
    ],
    [
      'partitions that are not a number',
      [configMap({ 'default.topic.partitions': 'six' }), broker('events')],
      `unable to build topic config from configmap: failed to parse config map ${NAMESPACE}/kafka-broker-config: failed to parse "default.topic.partitions": strconv.ParseInt: parsing "six": invalid syntax`,
    ],
    ['no bootstrap servers', [configMap({ 'bootstrap.servers': ' , ' }), broker('events')], 'bootstrapServers: []'],
    ['a ConfigMap that is not in the chart', [broker('events', { name: 'kafka-config' })], `unable to rebuild topic config, failed to get configmap ${NAMESPACE}/kafka-config`],
  ];

  it.each(badConfigs)('reports %s as the Kafka controller would (ConfigParsed)', async (_, objects, message) => {
    const { code, results } = await validate(objects);
    const line = results.find((r) => r.kind === 'Broker')!;
    expect(line.result).toBe('accepted'); // No webhook looks into the ConfigMap ...
    expect(line.config).toContain(message); // ... its controller refuses to use it.
    expect(code).toBe(1);
  });
});
