/**
 * Both charts through Knative's own admission code: k8s-tests/go/knative builds Knative Serving and
 * Eventing 1.21 (the release the README installs) into a command that decodes every Knative
 * object, defaults and validates it as the webhooks do on CREATE, with the ConfigMaps the release
 * installs. Broken copies of the charts' own objects must come back refused with Knative's words.
 * The first run builds the command (minutes with a cold Go cache); later runs take a second.
 */
import { execFile } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { environmentNames, environments } from '@avatar-pipeline/cdk8s';
import { goTool } from './support/go-tools.js';
import { renderChart } from './support/helm.js';
import { clone, parseObjects, type K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 20 * 60_000;
/** Each chart as `helm template` renders it (the real helm, built like the validator). */
const rendered = Object.fromEntries(
  await Promise.all(environmentNames.map(async (env) => [env, await renderChart(env, environments[env].namespace)] as const)),
) as Record<(typeof environmentNames)[number], string>;

interface Admission {
  file: string;
  kind: string;
  apiVersion: string;
  name: string;
  namespace: string;
  result: 'accepted' | 'refused' | 'skipped';
  errors: string;
  warnings?: string[];
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
const kindChart = () => parseObjects(rendered.kind).filter(Boolean);
const named = (objects: K8sObject[], apiVersion: string, kind: string, pick: (o: K8sObject) => boolean = () => true): K8sObject => {
  const found = objects.find((o) => o.apiVersion === apiVersion && o.kind === kind && pick(o));
  if (!found) throw new Error(`the kind chart has no ${kind} to break`);
  return clone(found);
};

beforeAll(async () => {
  binary = await goTool('knative-validate');
}, BUILD_TIMEOUT_MS);

describe.each(environmentNames.map((env) => [env]))('the %s chart under Knative 1.21 admission', (env) => {
  it('has every Knative object defaulted and accepted, with no warnings', async () => {
    const { code, results } = await admit(['-'], rendered[env]);
    const checked = results.filter((r) => r.result !== 'skipped');
    // Every Knative object of the chart was checked, none silently skipped.
    const expected = parseObjects(rendered[env]).filter((o) => o && isKnative(o));
    expect(checked.map((r) => `${r.kind}/${r.name}`).sort()).toEqual(expected.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    expect(checked.length).toBeGreaterThan(10);
    expect(checked.filter((r) => r.result === 'refused').map((r) => `${r.kind}/${r.name}: ${r.errors}`)).toEqual([]);
    expect(checked.flatMap((r) => (r.warnings ?? []).map((w) => `${r.kind}/${r.name}: ${w}`))).toEqual([]);
    expect(code).toBe(0);
  });
});

describe('Knative 1.21 admission on broken copies of the chart objects', () => {
  const objects = kindChart();
  const service = () => named(objects, 'serving.knative.dev/v1', 'Service');
  const spec = (s: K8sObject) => (s as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } }).spec.template.spec;
  const trigger = () => named(objects, 'eventing.knative.dev/v1', 'Trigger');
  type Filter = Record<string, Record<string, string> | unknown[]>;
  const filters = (t: K8sObject) => (t as unknown as { spec: { filters: Filter[] } }).spec;
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
