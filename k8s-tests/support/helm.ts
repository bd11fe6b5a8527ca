/** The real helm CLI (built from helm.sh/helm/v3, see go-tools.ts) on the committed charts. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { binDir, goTool } from './go-tools.js';
import { parseObjects, type K8sObject } from './manifests.js';

const run = promisify(execFile);
export const chartsDir = fileURLToPath(new URL('../../charts', import.meta.url));
export const RELEASE = 'avatar-pipeline';

export interface HelmResult {
  code: number;
  output: string;
}

/** Runs helm with a private home (no repositories, no plugins), never throwing on a failed command. */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const binary = await goTool('helm');
  const home = join(binDir, 'helm-home');
  const env = { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
  try {
    const { stdout, stderr } = await run(binary, args, { env, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** What `helm template` renders for an environment's chart, as YAML. */
export async function renderChart(environment: string, namespace: string): Promise<string> {
  const result = await helm(['template', RELEASE, join(chartsDir, environment), '--namespace', namespace]);
  if (result.code !== 0) throw new Error(`helm template ${environment} failed:\n${result.output}`);
  return result.output;
}

/** The objects `helm template` renders for an environment's chart. */
export async function helmTemplate(environment: string, namespace: string): Promise<K8sObject[]> {
  return parseObjects(await renderChart(environment, namespace)).filter(Boolean);
}
