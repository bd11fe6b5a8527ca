/**
 * The repository's shell scripts: every one (by `.sh` name or an sh/bash shebang, outside
 * node_modules and build output) parses (`bash -n`, `sh -n`) and is clean under
 * `shellcheck --severity=style` (Debian's `shellcheck` package; without it the check is skipped,
 * except under CI, where it fails).
 *
 * scripts/kind-up.sh cannot create a cluster here: it runs against stand-ins for kind, kubectl and
 * helm that record their arguments, which checks the steps, their order, the waits, the versions
 * and the re-run on an existing cluster. That the cluster it builds takes the chart is proven by
 * the live suite (live.test.ts) after `scripts/kind-up.sh && skaffold run`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { KNATIVE_MODULE_VERSION } from './support/go-tools.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const kindUp = join(root, 'scripts', 'kind-up.sh');
/** Directories that hold no scripts of ours (dependencies, build output, data). */
const SKIP_DIRS = new Set(['node_modules', '.git', '.bin', '.data', 'dist', 'coverage', 'test-artifacts', 'artifacts', 'corpus']);
const SHEBANG = /^#!\s*(?:\/usr\/bin\/env\s+|\/usr\/bin\/|\/bin\/)(bash|sh|dash|ksh)\b/;

/** Every shell script of the repository, relative to it, with the shell that runs it. */
function shellScripts(dir = root): { file: string; shell: 'bash' | 'sh' }[] {
  const found: { file: string; shell: 'bash' | 'sh' }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) found.push(...shellScripts(path));
      continue;
    }
    if (!entry.isFile() || statSync(path).size > 1024 * 1024) continue;
    const firstLine = readFileSync(path, 'utf8').slice(0, 200).split('\n', 1)[0]!;
    const shebang = SHEBANG.exec(firstLine);
    if (!shebang && !/\.(?:sh|bash)$/.test(entry.name)) continue;
    found.push({ file: relative(root, path), shell: shebang?.[1] === 'sh' || shebang?.[1] === 'dash' ? 'sh' : 'bash' });
  }
  return found.sort((a, b) => a.file.localeCompare(b.file));
}

const onPath = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const scripts = shellScripts();
const hasShellcheck = onPath('shellcheck');
const shellcheckSkip = hasShellcheck || process.env['CI'] ? undefined : 'shellcheck is not installed (apt-get install shellcheck)';
if (shellcheckSkip) console.warn(`k8s-tests scripts: shellcheck skipped: ${shellcheckSkip}`);

describe('shell scripts', () => {
  it('finds the scripts, kind-up.sh among them, executable', () => {
    const files = scripts.map((s) => s.file);
    expect(files).toEqual(expect.arrayContaining(['scripts/kind-up.sh', 'scripts/test-node24.sh', '.ci/run']));
    for (const file of ['scripts/kind-up.sh', 'scripts/test-node24.sh', '.ci/run']) {
      expect(statSync(join(root, file)).mode & 0o111, `${file} is executable`).not.toBe(0);
    }
  });

  it.each(scripts.map((s) => [s.file, s.shell] as const))('%s parses (%s -n)', (file, shell) => {
    const result = spawnSync(shell, ['-n', file], { cwd: root, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.skipIf(shellcheckSkip !== undefined)(`are clean under shellcheck --severity=style${shellcheckSkip ? ` (skipped: ${shellcheckSkip})` : ''}`, () => {
    if (!hasShellcheck) throw new Error('shellcheck is not installed, and CI requires the check: apt-get install shellcheck (scripts/ensure-packages.mjs installs it)');
    const result = spawnSync('shellcheck', ['--severity=style', ...scripts.map((s) => s.file)], { cwd: root, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

/** One call of a stand-in: the tool, its arguments, and what it read from stdin (`-f -`). */
interface Call {
  tool: string;
  args: string[];
  stdin?: string;
}

// Records each call as one JSON line; `kind get clusters` lists $FAKE_CLUSTERS; `kubectl apply
// -o name` names a CRD for the manifests that hold CRDs, as the real one would.
const STAND_IN = `#!/usr/bin/env bash
set -euo pipefail
tool="$(basename "$0")"
stdin=""
for arg in "$@"; do
  if [ "$arg" = - ]; then stdin="$(cat)"; fi
done
"$FAKE_NODE" -e 'process.stdout.write(JSON.stringify({ tool: process.argv[1], args: process.argv.slice(3), stdin: process.argv[2] || undefined }) + "\\n")' "$tool" "$stdin" "$@" >> "$FAKE_LOG"
case "$tool $*" in
  "kind get clusters") printf '%s' "$FAKE_CLUSTERS" ;;
  kubectl*" apply "*"-o name"*)
    case "$*" in *crds.yaml* | *kafka-controller.yaml*) echo customresourcedefinition.apiextensions.k8s.io/fakes.example.dev ;; esac
    echo deployment.apps/fake ;;
esac
`;

const work = mkdtempSync(join(tmpdir(), 'kind-up-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const bin = join(work, 'bin');
mkdirSync(bin);
for (const tool of ['kind', 'kubectl', 'helm']) {
  writeFileSync(join(bin, tool), STAND_IN);
  chmodSync(join(bin, tool), 0o755);
}

/** Runs kind-up.sh against the stand-ins; `clusters` is what kind says exists. */
function runKindUp(env: Record<string, string> = {}, clusters = ''): { status: number | null; stdout: string; stderr: string; calls: Call[] } {
  const log = join(work, `log-${Math.random().toString(36).slice(2)}`);
  writeFileSync(log, '');
  const result = spawnSync(kindUp, [], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: `${bin}${delimiter}${process.env['PATH']}`, HOME: work, FAKE_NODE: process.execPath, FAKE_LOG: log, FAKE_CLUSTERS: clusters, ...env },
  });
  const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Call);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls };
}

const CONTEXT = ['--context', 'kind-avatar-pipeline'];
const option = (args: string[], name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

/** The calls that change or wait on the cluster, in order, as short words. */
function steps(calls: Call[]): string[] {
  return calls.flatMap((c): string[] => {
    const a = c.args;
    if (c.tool === 'kind' && a[0] === 'create') return ['create'];
    if (c.tool === 'kind' && a[0] === 'export') return ['export kubeconfig'];
    if (c.tool === 'helm' && a.includes('upgrade')) return [`helm ${a[a.indexOf('--install') + 1]}`];
    if (c.tool !== 'kubectl') return [];
    if (a.includes('apply') && option(a, '-f') !== '-') return [`apply ${option(a, '-f')!.split('/').pop()}`];
    if (a.includes('apply')) return [`apply stdin${option(a, '-n') ? ` -n ${option(a, '-n')}` : ''}`];
    if (a.includes('patch')) return [`patch ${a[a.indexOf('patch') + 1]}`];
    if (a.includes('wait') && a.includes('--for=condition=Established')) return ['crds'];
    if (a.includes('wait') && a.includes('--for=condition=Available')) return [`available ${a[a.indexOf('--all') - 1]} ${option(a, '-n')}`];
    return [];
  });
}

/** knative-v1.<minor>.<patch> of the Go modules the offline checks build (Knative 1.x is v0.(x+27)). */
const knativeRelease = (() => {
  const [, minor, patch] = /^v0\.(\d+)\.(\d+)$/.exec(KNATIVE_MODULE_VERSION)!;
  return `knative-v1.${Number(minor) - 27}.${patch}`;
})();

const CORE_STEPS = [
  'apply serving-crds.yaml', 'crds',
  'apply serving-core.yaml', 'available deployment knative-serving',
  'apply kourier.yaml', 'available deployment kourier-system', 'available deployment knative-serving',
  'patch configmap/config-network',
  'apply eventing-crds.yaml', 'crds',
  'apply eventing-core.yaml', 'available deployment knative-eventing',
  'apply in-memory-channel.yaml', 'available deployment knative-eventing',
  'apply mt-channel-broker.yaml', 'available deployment knative-eventing',
  'patch configmap/config-features',
];
const MONITORING_STEPS = ['helm kube-prometheus-stack', 'available deployment monitoring', 'available prometheus monitoring'];

describe('scripts/kind-up.sh (against stand-ins for kind, kubectl and helm)', () => {
  it('creates the cluster, then installs what docs/deploy.md lists, in its order, waiting after each step', () => {
    const { status, stdout, stderr, calls } = runKindUp();
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(steps(calls)).toEqual(['create', ...CORE_STEPS, ...MONITORING_STEPS]);

    const create = calls.find((c) => c.tool === 'kind' && c.args[0] === 'create')!;
    expect(option(create.args, '--name')).toBe('avatar-pipeline');
    const [, minor] = /^kindest\/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}$/.exec(option(create.args, '--image')!) ?? [];
    expect(Number(minor), 'a pinned node image with Kubernetes >= 1.33').toBeGreaterThanOrEqual(33);

    for (const c of calls.filter((c) => c.tool === 'kubectl' && !c.args.includes('config'))) expect(c.args.slice(0, 2)).toEqual(CONTEXT);
    const urls = calls.filter((c) => c.tool === 'kubectl' && c.args.includes('apply')).map((c) => option(c.args, '-f'));
    for (const url of urls) expect(url).toMatch(new RegExp(`^https://github\\.com/knative/(serving|net-kourier|eventing)/releases/download/${knativeRelease}/`));

    const patches = calls.filter((c) => c.args.includes('patch')).map((c) => [option(c.args, '-n'), JSON.parse(option(c.args, '-p')!)]);
    expect(patches).toEqual([
      ['knative-serving', { data: { 'ingress-class': 'kourier.ingress.networking.knative.dev' } }],
      ['knative-eventing', { data: { 'authentication-oidc': 'enabled' } }],
    ]);

    const helm = calls.find((c) => c.tool === 'helm' && c.args.includes('upgrade'))!;
    expect(helm.args.slice(0, 2)).toEqual(['--kube-context', 'kind-avatar-pipeline']);
    expect(helm.args).toEqual(expect.arrayContaining(['prometheus-community/kube-prometheus-stack', '--create-namespace']));
    expect(option(helm.args, '-n')).toBe('monitoring');
    expect(option(helm.args, '--version')).toMatch(/^\d+\.\d+\.\d+$/);
    const values = parse(helm.stdin!);
    const release = { matchLabels: { release: 'kube-prometheus-stack' } };
    expect(values.prometheus.prometheusSpec).toMatchObject({ podMonitorSelector: release, ruleSelector: release, podMonitorNamespaceSelector: {}, ruleNamespaceSelector: {} });
    expect(values.grafana.sidecar.dashboards).toMatchObject({ label: 'grafana_dashboard', labelValue: '1', searchNamespace: 'ALL' });
    expect(calls.some((c) => c.tool === 'helm' && c.args.join(' ') === 'repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update')).toBe(true);

    expect(stdout.trim().split('\n').pop()).toMatch(/^Next: skaffold run\b/);
  });

  it('on an existing cluster skips the creation and applies everything again', () => {
    const { status, calls } = runKindUp({}, 'other\navatar-pipeline\n');
    expect(status).toBe(0);
    expect(steps(calls)).toEqual(['export kubeconfig', ...CORE_STEPS, ...MONITORING_STEPS]);
  });

  it('WITH_KAFKA=1 adds a single-node Kafka and Knative\'s Kafka broker; WITH_KEDA=1 adds KEDA', () => {
    const { status, stderr, calls } = runKindUp({ WITH_KAFKA: '1', WITH_KEDA: '1', KIND_CLUSTER_NAME: 'other' });
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(steps(calls)).toEqual([
      'create',
      ...CORE_STEPS,
      'apply stdin', 'apply stdin -n kafka', 'available deployment kafka',
      'apply eventing-kafka-controller.yaml', 'crds', 'available deployment knative-eventing',
      'apply eventing-kafka-broker.yaml', 'available deployment knative-eventing',
      'patch configmap/kafka-broker-config',
      ...MONITORING_STEPS,
      'helm keda', 'available deployment keda',
    ]);
    for (const c of calls.filter((c) => c.tool === 'kubectl' && !c.args.includes('config'))) expect(c.args.slice(0, 2)).toEqual(['--context', 'kind-other']);
    const kafkaUrls = calls.map((c) => option(c.args, '-f')).filter((f) => f?.includes('kafka-'));
    expect(kafkaUrls).toEqual([
      `https://github.com/knative-extensions/eventing-kafka-broker/releases/download/${knativeRelease}/eventing-kafka-controller.yaml`,
      `https://github.com/knative-extensions/eventing-kafka-broker/releases/download/${knativeRelease}/eventing-kafka-broker.yaml`,
    ]);
    const kafka = parseAll(calls.find((c) => c.args.includes('kafka') && c.stdin?.includes('kind: Deployment'))!.stdin!);
    const service = kafka.find((o) => o.kind === 'Service')!;
    const pod = kafka.find((o) => o.kind === 'Deployment')!.spec.template.spec;
    expect(pod.enableServiceLinks).toBe(false);
    const env = Object.fromEntries(pod.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(env['KAFKA_ADVERTISED_LISTENERS']).toBe(`PLAINTEXT://${service.metadata.name}.kafka.svc.cluster.local:9092`);
    expect(Buffer.from(env['CLUSTER_ID'], 'base64url')).toHaveLength(16);
    const config = calls.find((c) => c.args.includes('configmap/kafka-broker-config'))!;
    expect(JSON.parse(option(config.args, '-p')!).data).toEqual({ 'bootstrap.servers': 'kafka.kafka.svc.cluster.local:9092', 'default.topic.replication.factor': '1' });
    const keda = calls.find((c) => c.tool === 'helm' && c.args.includes('kedacore/keda'))!;
    expect(option(keda.args, '-n')).toBe('keda');
    expect(option(keda.args, '--version')).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('refuses a bad flag, and names every missing tool before touching anything', () => {
    const bad = runKindUp({ WITH_KAFKA: 'yes' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("WITH_KAFKA must be 0 or 1, not 'yes'");
    expect(bad.calls).toEqual([]);

    const empty = mkdtempSync(join(work, 'empty-'));
    const bash = spawnSync('sh', ['-c', 'command -v bash'], { encoding: 'utf8' }).stdout.trim();
    const missing = spawnSync(bash, [kindUp], { cwd: root, encoding: 'utf8', env: { PATH: empty, HOME: work } });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^kind-up: missing on PATH: kind kubectl helm\. Install kind/);
  });

  it('--help prints the settings it reads', () => {
    const help = spawnSync(kindUp, ['--help'], { cwd: root, encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const name of ['KIND_CLUSTER_NAME', 'KIND_NODE_IMAGE', 'KNATIVE_VERSION', 'KUBE_PROMETHEUS_STACK_VERSION', 'WITH_KAFKA', 'WITH_KEDA']) expect(help.stdout).toContain(name);
  });
});

interface Obj {
  kind: string;
  metadata: { name: string };
  spec: any;
}

function parseAll(text: string): Obj[] {
  return text.split(/^---$/m).map((doc) => parse(doc) as Obj).filter(Boolean);
}
