/** Builds the cdk8s App of one environment: one chart, `avatar-pipeline`, synthesized to one file. */
import { App, YamlOutputType } from 'cdk8s';
import { environments, type EnvironmentName } from './config.js';
import { PipelineChart } from './pipeline.js';

export const CHART_ID = 'avatar-pipeline';

/** `outdir` defaults to CDK8S_OUTDIR, which `cdk8s synth` sets (`npm run synth` prints the YAML instead). */
export function buildApp(environment: EnvironmentName, outdir?: string): { app: App; chart: PipelineChart } {
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART, ...(outdir ? { outdir } : {}) });
  const chart = new PipelineChart(app, CHART_ID, { config: environments[environment] });
  return { app, chart };
}

/** The environment named by AVATAR_ENV (`kind` when unset). */
export function environmentFromEnv(value = process.env['AVATAR_ENV']): EnvironmentName {
  const name = value ?? 'kind';
  if (name !== 'kind' && name !== 'eks') throw new Error(`AVATAR_ENV must be kind or eks, not ${name}`);
  return name;
}
