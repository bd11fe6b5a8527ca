/**
 * charts/<env> is the committed output of `npm run charts` (cdk8s synth --format helm). The app is
 * synthesized again in memory and must match it byte for byte: a change to the cdk8s source, the
 * kit topology or the environment config that was not followed by `npm run charts` fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildApp, CHART_ID, environmentNames } from '../src/index.js';

const chartDir = (env: string) => new URL(`../../charts/${env}/`, import.meta.url);
const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const chartVersion = /--chart-version (\S+)/.exec(packageJson.scripts['charts'] ?? '')?.[1];

describe.each(environmentNames.map((e) => [e]))('charts/%s', (env) => {
  it('holds exactly the chart files cdk8s writes', () => {
    expect(readdirSync(chartDir(env)).sort()).toEqual(['Chart.yaml', 'README.md', 'templates']);
    expect(readdirSync(new URL('templates/', chartDir(env)))).toEqual([`${CHART_ID}.k8s.yaml`]);
  });

  it('has a Helm v2 Chart.yaml of the version the charts script passes', () => {
    const chart = parse(readFileSync(new URL('Chart.yaml', chartDir(env)), 'utf8')) as Record<string, string>;
    expect(chartVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart).toEqual({ apiVersion: 'v2', name: 'cdk8s', version: chartVersion, description: 'Generated chart for cdk8s', type: 'application' });
  });

  it('matches what the cdk8s app synthesizes now (run `npm run charts` after changing it)', () => {
    const committed = readFileSync(new URL(`templates/${CHART_ID}.k8s.yaml`, chartDir(env)), 'utf8');
    expect(buildApp(env).app.synthYaml()).toBe(committed);
  });
});

describe('the drift check', () => {
  it('notices a change', () => {
    const committed = readFileSync(new URL(`templates/${CHART_ID}.k8s.yaml`, chartDir('kind')), 'utf8');
    const { app, chart } = buildApp('kind');
    chart.node.tryRemoveChild('ksvc-push');
    expect(app.synthYaml()).not.toBe(committed);
  });
});
