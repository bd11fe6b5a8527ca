/**
 * skaffold.yaml under the real skaffold (v2.19.0, built from the Go module proxy like helm, see
 * go-tools.ts): `skaffold render` of the default (kind) profile and of `-p eks` runs offline (no
 * cluster, registry or Docker: every artifact comes as already built, from a --build-artifacts
 * file) and renders charts/avatar-pipeline through the real `helm template` with the
 * environment's values file. The helm on skaffold's PATH records its arguments: skaffold must pass
 * every artifact's tag as image.tags.<name> (its setValueTemplates name skaffold's
 * IMAGE_TAG_<artifact> variables; a misspelt one renders "<no value>"), and the result must be
 * exactly `helm template` with those values, Job names (which hash their spec, images included)
 * and all. As helm's post-renderer, skaffold then gives every image an artifact builds its full
 * reference (the --default-repo on eks), Knative Services' included. The deploy hooks (namespace
 * before, `kubectl wait` for the Knative objects after) are read from the effective configuration
 * (`skaffold diagnose`): they need a cluster to run.
 * The first run builds skaffold (several minutes on two cores); later runs take seconds.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { valuesFile, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { goTool } from './support/go-tools.js';
import { helmTemplate, NAMESPACE, RELEASE } from './support/helm.js';
import { chartDir, parseObjects, type K8sObject } from './support/manifests.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const root = fileURLToPath(new URL('..', import.meta.url));
/** The registry of docs/deploy.md's `skaffold run -p eks --default-repo=…` (ECR), and an EKS context. */
const DEFAULT_REPO = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const EKS_CONTEXT = 'arn:aws:eks:eu-west-1:123456789012:cluster/avatar-pipeline';
/** What `skaffold render` prints besides the manifests (written to a file, --output): the hook's progress. */
const HOOK_PROGRESS = ['Starting pre-render hooks...', 'Completed pre-render hooks...'];

let work: string;
let skaffoldBinary: string;
/** A clean environment: no developer SKAFFOLD_* settings, kubeconfig, helm or skaffold home. */
let baseEnv: Record<string, string>;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function skaffold(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(skaffoldBinary, args, { cwd: root, env: { ...baseEnv, ...env }, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A kubeconfig whose current context is `context`, on a server nobody listens on (--offline must not call it). */
function kubeconfig(context: string): string {
  const file = join(work, `kubeconfig-${context.replace(/\W/g, '_')}`);
  const cluster = { name: context, cluster: { server: 'https://127.0.0.1:9' } };
  writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [cluster], users: [{ name: context, user: {} }], contexts: [{ name: context, context: { cluster: context, user: context } }], 'current-context': context }));
  return file;
}

beforeAll(async () => {
  const [binary, helmBinary] = await Promise.all([goTool('skaffold'), goTool('helm')]);
  skaffoldBinary = binary;
  work = mkdtempSync(join(tmpdir(), 'skaffold-render-'));
  const bin = join(work, 'bin');
  const home = join(work, 'home');
  mkdirSync(bin);
  mkdirSync(join(home, '.skaffold'), { recursive: true });
  // skaffold's helm renderer runs `helm` from PATH: the one built for these checks, behind a
  // wrapper that records each call's arguments (NUL-separated, one call a line).
  writeFileSync(join(bin, 'helm'), `#!/bin/sh\n{ printf '%s\\0' "$@"; echo; } >> '${join(work, 'helm.log')}'\nexec '${helmBinary}' "$@"\n`, { mode: 0o755 });
  // The pre-render hook (`npm run charts`) only records that it ran: regenerating the committed
  // charts belongs to the cdk8s tests, not to a render that other test files read in parallel.
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\necho "$PWD npm $*" >> '${join(work, 'hooks.log')}'\n`, { mode: 0o755 });
  // No usage data, update check or survey prompt (skaffold would otherwise turn collection on in
  // this file). The EKS context has multi-level-repo set, as docs/deploy.md has it done with
  // `skaffold config set multi-level-repo true`.
  writeFileSync(
    join(home, '.skaffold', 'config'),
    stringify({ global: { 'collect-metrics': false, 'update-check': false, survey: { 'disable-prompt': true } }, kubeContexts: [{ 'kube-context': EKS_CONTEXT, 'multi-level-repo': true }] }),
  );
  baseEnv = {
    PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
    HOME: home,
    TMPDIR: work,
    KUBECONFIG: join(work, 'no-kubeconfig'),
    HELM_CACHE_HOME: join(home, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(home, 'helm', 'config'),
    HELM_DATA_HOME: join(home, 'helm', 'data'),
  };
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Effective {
  build: { artifacts: { image: string }[] };
  manifests: { helm?: { releases: Record<string, unknown>[] }; rawYaml?: string[]; hooks?: unknown };
  deploy: Record<string, unknown> & { kubectl?: { hooks?: unknown } };
  resourceSelector: { allow: { groupKind: string; image: string[] }[] };
}

/** The arguments of every helm call recorded since the log was last removed. */
const helmCalls = (): string[][] =>
  readFileSync(join(work, 'helm.log'), 'utf8')
    .split('\0\n')
    .filter(Boolean)
    .map((call) => call.split('\0'));

/** The value of `name` of an artifact (the last part of its image name: kind.local/avatar-pipeline/push -> push). */
const serviceOf = (image: string) => image.split('/').at(-1) ?? '';

/** Every `image` field with where it is: `<apiVersion> <kind>/<name> <path>`. */
function imagesIn(objects: readonly K8sObject[]): { where: string; image: string }[] {
  const found: { where: string; image: string }[] = [];
  for (const o of objects) {
    const walk = (value: unknown, path: string): void => {
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}[${i}]`));
      else if (value && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) {
          if (k === 'image' && typeof v === 'string') found.push({ where: `${o.apiVersion} ${o.kind}/${o.metadata.name} ${path}`, image: v });
          else walk(v, `${path}.${k}`);
        }
      }
    };
    walk(o, '');
  }
  return found;
}

const key = (o: K8sObject) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ''} ${o.metadata.name}`;
const byKey = (objects: readonly K8sObject[]) => [...objects].sort((a, b) => key(a).localeCompare(key(b)));

/**
 * The commands of docs/deploy.md: `skaffold run` against kind (base configuration, kind profile picked up by
 * the context), and eks. `repository`: the artifacts' images, `<repository>/<service>`; `values`:
 * what the profile sets besides the tags (eks: no registry in the chart's images, --default-repo
 * gives it).
 */
const profiles: { env: EnvironmentName; args: string[]; renderArgs: string[]; context: string; repository: string; values: Record<string, string> }[] = [
  { env: 'kind', args: [], renderArgs: [], context: 'kind-avatar-pipeline', repository: 'kind.local/avatar-pipeline', values: {} },
  { env: 'eks', args: ['-p', 'eks'], renderArgs: [`--default-repo=${DEFAULT_REPO}`], context: EKS_CONTEXT, repository: 'avatar-pipeline', values: { 'image.registry': '' } },
];

describe('skaffold.yaml under the real skaffold', () => {
  it('is at the schema version skaffold 2.19 writes: `skaffold fix` has nothing to migrate', async () => {
    const result = await skaffold(['fix']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe('config is already version skaffold/v4beta14');
    expect(result.stderr).toBe('');
    // An older schema is migrated (and printed, the file is left alone).
    const old = join(work, 'old.yaml');
    writeFileSync(old, readFileSync(join(root, 'skaffold.yaml'), 'utf8').replace('apiVersion: skaffold/v4beta14', 'apiVersion: skaffold/v4beta11'));
    const migrated = await skaffold(['fix', '-f', old]);
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toMatch(/^apiVersion: skaffold\/v4beta14$/m);
  });

  it('parses strictly: a field skaffold does not know is an error, not a warning', async () => {
    const typo = join(work, 'typo.yaml');
    writeFileSync(typo, readFileSync(join(root, 'skaffold.yaml'), 'utf8').replace('useBuildkit: true', 'useBuildKit: true'));
    const result = await skaffold(['diagnose', '--yaml-only', '-f', typo]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/field useBuildKit not found in type latest\.LocalBuild/);
  });

  it('pushes to ECR avatar-pipeline/<service> only with multi-level-repo set for the context (the docs/deploy.md step)', async () => {
    const builds = join(work, 'builds-flat.json');
    writeFileSync(builds, JSON.stringify({ builds: [{ imageName: 'avatar-pipeline/push', tag: 'avatar-pipeline/push:flat' }] }));
    const output = join(work, 'rendered-flat.yaml');
    const args = ['render', '-p', 'eks', `--default-repo=${DEFAULT_REPO}`, '--offline', '--digest-source=tag', '--build-artifacts', builds, '--output', output];
    const result = await skaffold(args, { KUBECONFIG: kubeconfig('arn:aws:eks:eu-west-1:123456789012:cluster/unconfigured') });
    expect(result.code, result.stderr).toBe(0);
    const images = imagesIn(parseObjects(readFileSync(output, 'utf8')).filter(Boolean)).map((i) => i.image);
    expect(images).toContain(`${DEFAULT_REPO}/avatar-pipeline_push:flat`);
    expect(images.filter((i) => i.startsWith(`${DEFAULT_REPO}/avatar-pipeline/`))).toEqual([]);
  });
});

describe.each(profiles)('skaffold render for $env (offline)', ({ env, args, renderArgs, context, repository, values }) => {
  let effective: Effective;
  /** Artifact image -> the full reference it was built as (`<image>:render-<service>`). */
  let tags: Map<string, string>;
  let result: Result;
  let rendered: K8sObject[];
  /** `helm template` with the environment's values, the profile's values and every artifact's tag. */
  let charted: K8sObject[];
  let hooks: string[];
  let helmTemplateCalls: string[][];

  /** The values skaffold is to pass: the profile's, and image.tags.<service>=<tag> for each artifact. */
  const expectedSets = () => [...Object.entries(values).map(([k, v]) => `${k}=${v}`), ...[...tags].map(([image, ref]) => `image.tags.${serviceOf(image)}=${ref.slice(image.length + 1)}`)];

  beforeAll(async () => {
    const kube = { KUBECONFIG: kubeconfig(context) };
    // The configuration as skaffold resolves it for the profile (parsed, upgraded, profile applied).
    const diagnose = await skaffold(['diagnose', '--yaml-only', ...args], kube);
    if (diagnose.code !== 0) throw new Error(`skaffold diagnose: ${diagnose.stderr}`);
    effective = parse(diagnose.stdout) as Effective;
    // A tag per artifact, as `skaffold build --file-output` would write it.
    tags = new Map(effective.build.artifacts.map((a) => [a.image, `${a.image}:render-${serviceOf(a.image)}`]));
    const builds = join(work, `builds-${env}.json`);
    writeFileSync(builds, JSON.stringify({ builds: [...tags].map(([imageName, tag]) => ({ imageName, tag })) }));
    const output = join(work, `rendered-${env}.yaml`);
    rmSync(join(work, 'hooks.log'), { force: true });
    rmSync(join(work, 'helm.log'), { force: true });
    // --digest-source=tag: the given tags as they are (the default for a remote cluster asks the registry for digests).
    result = await skaffold(['render', ...args, ...renderArgs, '--offline', '--digest-source=tag', '--build-artifacts', builds, '--output', output], kube);
    if (result.code !== 0) throw new Error(`skaffold render ${args.join(' ')} exited ${result.code}:\n${result.stdout}${result.stderr}`);
    rendered = parseObjects(readFileSync(output, 'utf8'));
    hooks = readFileSync(join(work, 'hooks.log'), 'utf8').trim().split('\n');
    helmTemplateCalls = helmCalls().filter((call) => call.includes('template'));
    charted = await helmTemplate(env, { extra: expectedSets().flatMap((v) => ['--set', v]) });
  });

  /** The image skaffold is to write for an artifact: its tag, in the default repo for eks. */
  const expectedTag = (image: string) => {
    const tag = tags.get(image);
    return tag && env === 'eks' ? `${DEFAULT_REPO}/${tag}` : tag;
  };

  it('renders charts/avatar-pipeline with helm (release avatar-pipeline, values-<env>.yaml, the tags as values) and applies it with kubectl', () => {
    expect(effective.manifests.rawYaml).toBeUndefined();
    // skaffold's template variables are IMAGE_TAG_<artifact image, every other character than [A-Za-z0-9] as _>.
    const setValueTemplates = Object.fromEntries([...tags.keys()].map((image) => [`image.tags.${serviceOf(image)}`, `{{.IMAGE_TAG_${image.replace(/[^A-Za-z0-9]/g, '_')}}}`]));
    expect(effective.manifests.helm?.releases).toEqual([
      {
        name: RELEASE,
        chartPath: chartDir.replace(/\/$/, ''),
        namespace: NAMESPACE,
        skipBuildDependencies: true,
        valuesFiles: [join(chartDir, valuesFile(env))],
        ...(Object.keys(values).length > 0 ? { setValues: values } : {}),
        setValueTemplates,
      },
    ]);
    expect(Object.keys(effective.deploy).filter((k) => !['statusCheckDeadlineSeconds', 'logs', 'kubectl'].includes(k))).toEqual([]);
    expect(Object.keys(effective.deploy.kubectl ?? {})).toEqual(['hooks']);
    expect(effective.resourceSelector.allow).toContainEqual({ groupKind: 'Service.serving.knative.dev', image: ['.*'] });
  });

  it('creates and labels the release namespace before deploying, and waits for every Knative Service, Broker and Trigger after', () => {
    const shell = (command: string) => ({ host: { command: ['sh', '-c', command] } });
    expect(effective.deploy.kubectl?.hooks).toEqual({
      before: [
        shell(
          `kubectl create namespace ${NAMESPACE} --dry-run=client -o yaml | kubectl apply -f - && kubectl label namespace ${NAMESPACE} --overwrite pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted`,
        ),
      ],
      after: [
        {
          host: {
            command: ['kubectl', 'wait', '-n', NAMESPACE, '--for=condition=Ready', '--timeout=600s', 'services.serving.knative.dev,brokers.eventing.knative.dev,triggers.eventing.knative.dev', '--all'],
          },
        },
      ],
    });
    // Those are all the chart's Knative objects but its SinkBindings (which the Services they bind
    // wait for anyway): no other Knative kind goes unwaited for.
    const waited = new Set(['Service.serving.knative.dev', 'Broker.eventing.knative.dev', 'Trigger.eventing.knative.dev']);
    const knative = rendered.filter((o) => /(^|\.)knative\.dev\//.test(o.apiVersion) && !o.apiVersion.startsWith('sources.'));
    expect(knative.filter((o) => !waited.has(`${o.kind}.${o.apiVersion.split('/')[0]}`)).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
  });

  it('prints no warning, only the pre-render hook’s progress', () => {
    expect(`${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.trim() !== '')).toEqual(HOOK_PROGRESS);
  });

  it('runs `npm run charts` before rendering, from the repository root', () => {
    expect(hooks).toEqual([`${root.replace(/\/$/, '')} npm run charts`]);
  });

  it('runs `helm template` once, with the values file and image.tags.<service>=<tag> of every artifact (no template variable left empty)', () => {
    expect(helmTemplateCalls).toHaveLength(1);
    const call = helmTemplateCalls[0]!;
    const after = (flag: string) => call.flatMap((a, i) => (a === flag ? [call[i + 1] ?? ''] : []));
    expect(call.slice(call.indexOf('template'), call.indexOf('template') + 3)).toEqual(['template', RELEASE, 'charts/avatar-pipeline']);
    expect(after('-f')).toEqual([`charts/avatar-pipeline/${valuesFile(env)}`]);
    expect(after('--namespace')).toEqual([NAMESPACE]);
    expect(after('--set').sort()).toEqual(expectedSets().sort());
    expect(call.join(' ')).not.toContain('<no value>');
  });

  it('renders exactly the objects of `helm template` with the same values and tags, Job names included, images aside', () => {
    expect(rendered.length).toBeGreaterThan(30);
    // Jobs are named after their spec: the VAPID Job's name changes with the push image's tag.
    const jobs = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'Job').map((o) => o.metadata.name).sort();
    expect(jobs(rendered)).toEqual(jobs(charted));
    expect(jobs(rendered).some((name) => name.startsWith('vapid-init-'))).toBe(true);
    const artifactOf = new Map([...tags.values()].map((tag) => [expectedTag(tag.slice(0, tag.lastIndexOf(':'))), tag]));
    const untagged = structuredClone(rendered);
    for (const o of untagged) {
      const walk = (value: unknown): void => {
        if (Array.isArray(value)) value.forEach(walk);
        else if (value && typeof value === 'object') {
          const record = value as Record<string, unknown>;
          for (const [k, v] of Object.entries(record)) {
            if (k === 'image' && typeof v === 'string') record[k] = artifactOf.get(v) ?? v;
            else walk(v);
          }
        }
      };
      walk(o);
    }
    expect(byKey(untagged)).toEqual(byKey(charted));
  });

  it('gives every image an artifact builds its tag: Knative Services, the VAPID Job and the Deployments alike', async () => {
    const images = imagesIn(rendered);
    const ours = imagesIn(charted).filter((i) => [...tags.values()].includes(i.image));
    expect(ours.length).toBeGreaterThan(0);
    // Every artifact is used by the chart, and every use of one is rewritten.
    expect(new Set(ours.map((i) => i.image))).toEqual(new Set(tags.values()));
    const artifact = (tag: string) => tag.slice(0, tag.lastIndexOf(':'));
    const expected = new Map(ours.map((i) => [i.where, expectedTag(artifact(i.image))]));
    expect(new Map(images.filter((i) => expected.has(i.where)).map((i) => [i.where, i.image]))).toEqual(expected);
    // Knative Services: on skaffold's default allowlist of kinds to rewrite, and in resourceSelector.
    const services = rendered.filter((o) => o.apiVersion === 'serving.knative.dev/v1' && o.kind === 'Service');
    expect(services.length).toBeGreaterThan(0);
    for (const service of services) {
      const [container, ...more] = imagesIn([service]);
      expect(more, service.metadata.name).toEqual([]);
      expect(container?.image, service.metadata.name).toBe(expectedTag(`${repository}/${service.metadata.name}`));
    }
    // The VAPID key Job runs the push image; s3-source polls SQS from a Deployment on eks; the dev
    // token issuer (kind only) is a Deployment.
    const imagesOf = (kind: string, prefix: string) => imagesIn(rendered.filter((o) => o.kind === kind && o.metadata.name.startsWith(prefix))).map((i) => i.image);
    expect(imagesOf('Job', 'vapid-init-')).toEqual([expectedTag(`${repository}/push`)]);
    if (env === 'eks') expect(imagesOf('Deployment', 's3-source')).toEqual([expectedTag(`${repository}/s3-source`)]);
    if (env === 'kind') expect(imagesOf('Deployment', 'dev-issuer')).toEqual([expectedTag(`${repository}/dev-issuer`)]);
    // No untagged artifact name is left, nor on eks one without the default repo; images nobody
    // builds are as the chart pins them.
    for (const i of images) expect(tags.has(i.image) || (env === 'eks' && [...tags.values()].includes(i.image)), `${i.where}: ${i.image}`).toBe(false);
    const pinned = imagesIn(charted).filter((i) => !expected.has(i.where));
    expect(images.filter((i) => !expected.has(i.where))).toEqual(pinned);
    // With no tags at all the chart's images and Job names differ: the tags are what names the VAPID Job.
    const untagged = await helmTemplate(env, { extra: Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]) });
    const vapid = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Job' && o.metadata.name.startsWith('vapid-init-'))?.metadata.name;
    expect(vapid(untagged)).not.toBe(vapid(rendered));
  });
});
