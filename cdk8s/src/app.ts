/** Builds the cdk8s App: one chart, `avatar-pipeline`, written as a Helm template (helm.ts). */
import { App } from 'cdk8s';
import { PipelineChart } from './pipeline.js';

export const CHART_ID = 'avatar-pipeline';

export function buildApp(): { app: App; chart: PipelineChart } {
  const app = new App();
  const chart = new PipelineChart(app, CHART_ID);
  return { app, chart };
}
