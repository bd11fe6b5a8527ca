/**
 * The real implementations the Kubernetes checks run, built from the Go module proxy into
 * k8s-tests/.bin (gitignored). Each tool's module under k8s-tests/go pins its versions in go.mod
 * and go.sum; a binary is rebuilt only when it is missing or older than its module's files, so
 * only the first run pays for the build (kube-apiserver: several minutes on two cores).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const modules = join(root, 'go');
export const binDir = join(root, '.bin');

/** Knative release docs/deploy.md installs, and its Go modules' version (knative-v1.21.0). */
export const KNATIVE_MODULE_VERSION = 'v0.48.0';
/** Prometheus Operator release whose CRDs (PodMonitor, PrometheusRule) the checks install. */
export const PROMETHEUS_OPERATOR_VERSION = 'v0.88.0';

interface Tool {
  module: string;
  pkg: string;
  ldflags?: readonly string[];
}

const tools = {
  // As Kubernetes' release builds do (hack/lib/version.sh): /version says 1.34.4, which helm checks
  // against the chart's kubeVersion on install.
  'kube-apiserver': {
    module: 'apiserver',
    pkg: 'k8s.io/kubernetes/cmd/kube-apiserver',
    ldflags: ['gitVersion=v1.34.4', 'gitMajor=1', 'gitMinor=34', 'gitTreeState=clean'].map((v) => `-X k8s.io/component-base/version.${v}`),
  },
  etcd: { module: 'apiserver', pkg: 'go.etcd.io/etcd/server/v3' },
  // As helm's release builds do (its Makefile): the Kubernetes version it assumes without a cluster
  // comes from its client-go (v0.36 -> 1.36), not the 1.20 compiled in as a fallback.
  helm: {
    module: 'helm',
    pkg: 'helm.sh/helm/v3/cmd/helm',
    ldflags: ['chartutil', 'lint/rules'].flatMap((p) => [`-X helm.sh/helm/v3/pkg/${p}.k8sVersionMajor=1`, `-X helm.sh/helm/v3/pkg/${p}.k8sVersionMinor=36`]),
  },
  'knative-validate': { module: 'knative', pkg: '.' },
  skaffold: { module: 'skaffold', pkg: 'github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold' },
  // Prometheus 3.16.0 (its Go module is tagged v0.316.0); the version as its release builds set it (.promu.yml).
  promtool: { module: 'promtool', pkg: 'github.com/prometheus/prometheus/cmd/promtool', ldflags: ['-X github.com/prometheus/common/version.Version=3.16.0'] },
} satisfies Record<string, Tool>;
export type GoTool = keyof typeof tools;

/** The newest of a module's files and of this file (which holds the build flags). */
function newestSource(dir: string): number {
  const files = readdirSync(dir).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'));
  return Math.max(statSync(fileURLToPath(import.meta.url)).mtimeMs, ...files.map((f) => statSync(join(dir, f)).mtimeMs));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One builder at a time per tool: test files run in parallel processes and share the binaries. */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(binDir, `.${name}.lock`);
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(existsSync(join(lock, 'pid')) ? readFileSync(join(lock, 'pid'), 'utf8') : '0');
      if (owner > 0 && !alive(owner)) rmSync(lock, { recursive: true, force: true });
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The path of a built tool, building it first when needed. */
export async function goTool(name: GoTool): Promise<string> {
  const { module, pkg, ldflags = [] }: Tool = tools[name];
  const dir = join(modules, module);
  const binary = join(binDir, name);
  const fresh = () => existsSync(binary) && statSync(binary).mtimeMs >= newestSource(dir);
  if (fresh()) return binary;
  mkdirSync(binDir, { recursive: true });
  return withLock(name, async () => {
    if (fresh()) return binary;
    try {
      await run('go', ['build', '-trimpath', '-ldflags', ldflags.join(' '), '-o', binary, pkg], { cwd: dir, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, CGO_ENABLED: '0' } });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the Kubernetes checks need Go 1.24 or newer on the PATH (`go` was not found)');
      throw err;
    }
    return binary;
  });
}

/** Where a module version's files are (downloaded through the module proxy, checked against go.sum's database). */
export async function goModuleDir(path: string, version: string): Promise<string> {
  const { stdout } = await run('go', ['mod', 'download', '-json', `${path}@${version}`], { cwd: modules, maxBuffer: 4 * 1024 * 1024 });
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${path}@${version}: ${info.Error ?? 'no directory'}`);
  return info.Dir;
}
