/** The real helm CLI (built from helm.sh/helm/v3, see go-tools.ts) on the committed chart. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { environmentNames, valuesFile, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { binDir, goTool } from './go-tools.js';
import { chartDir, environmentValues, parseObjects, type K8sObject, type Values } from './manifests.js';

const run = promisify(execFile);
export const RELEASE = 'avatar-pipeline';
/** The namespace the environments are rendered for, unless a test names another. */
export const NAMESPACE = 'avatar-pipeline';

export interface HelmResult {
  code: number;
  output: string;
}

/** Runs helm with a private home (no repositories, no plugins), never throwing on a failed command. */
export async function helm(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<HelmResult> {
  const binary = await goTool('helm');
  const home = join(binDir, 'helm-home');
  const fullEnv = { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), ...env };
  try {
    const { stdout, stderr } = await run(binary, args, { env: fullEnv, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `-f values-<environment>.yaml` of the chart. */
export const valuesArgs = (environment: EnvironmentName) => ['-f', join(chartDir, valuesFile(environment))];

/** What `helm template` renders with an environment's values (and `extra` arguments: --set, -f), as YAML. */
export async function renderChart(environment: EnvironmentName, options: { namespace?: string; extra?: readonly string[] } = {}): Promise<string> {
  const namespace = options.namespace ?? NAMESPACE;
  const result = await helm(['template', RELEASE, chartDir, '--namespace', namespace, ...valuesArgs(environment), ...(options.extra ?? [])]);
  if (result.code !== 0) throw new Error(`helm template (${environment}) failed:\n${result.output}`);
  return result.output;
}

/** The objects `helm template` renders. */
export async function helmTemplate(environment: EnvironmentName, options: { namespace?: string; extra?: readonly string[] } = {}): Promise<K8sObject[]> {
  return parseObjects(await renderChart(environment, options));
}

/** One environment as the chart renders it: its values, namespace and objects. */
export interface Rendered {
  name: EnvironmentName;
  namespace: string;
  values: Values;
  yaml: string;
  objects: K8sObject[];
}

const cache = new Map<EnvironmentName, Promise<Rendered>>();

/** An environment rendered with its values file into NAMESPACE (cached: tests must not change it; clone to break). */
export function rendered(name: EnvironmentName): Promise<Rendered> {
  let result = cache.get(name);
  if (!result) {
    result = renderChart(name).then((yaml) => ({ name, namespace: NAMESPACE, values: environmentValues(name), yaml, objects: parseObjects(yaml) }));
    cache.set(name, result);
  }
  return result;
}

export const renderedEnvironments = (): Promise<Rendered[]> => Promise.all(environmentNames.map(rendered));
