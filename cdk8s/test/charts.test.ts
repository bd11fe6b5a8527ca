/**
 * charts/<env> is the committed output of `npm run charts`. The chart is rendered again in memory
 * and must match it byte for byte: a change to the cdk8s source, the kit topology or the
 * environment config that was not followed by `npm run charts` fails here. (k8s-tests runs the real
 * helm on the committed charts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildApp, CHART_NAME, CHART_VERSION, chartFiles, environmentNames, helmLiteral, TEMPLATE_FILE } from '../src/index.js';

const chartDir = (env: string) => new URL(`../../charts/${env}/`, import.meta.url);

describe.each(environmentNames.map((e) => [e]))('charts/%s', (env) => {
  it('holds exactly the chart files the writer writes, each as it writes it now (run `npm run charts` after a change)', () => {
    const files = chartFiles(env);
    expect(readdirSync(chartDir(env)).sort()).toEqual(['Chart.yaml', 'README.md', 'templates']);
    expect(readdirSync(new URL('templates/', chartDir(env)))).toEqual([TEMPLATE_FILE.replace('templates/', '')]);
    for (const [path, content] of Object.entries(files)) expect(readFileSync(new URL(path, chartDir(env)), 'utf8'), path).toBe(content);
  });

  it('has a Helm v2 Chart.yaml named for the product, with versions', () => {
    const chart = parse(readFileSync(new URL('Chart.yaml', chartDir(env)), 'utf8')) as Record<string, string>;
    expect(chart).toMatchObject({ apiVersion: 'v2', name: CHART_NAME, version: CHART_VERSION, appVersion: CHART_VERSION, type: 'application' });
  });
});

describe('the chart writer', () => {
  it('notices a change', () => {
    const { app, chart } = buildApp('kind');
    chart.node.tryRemoveChild('ksvc-push');
    expect(helmLiteral(app.synthYaml())).not.toBe(chartFiles('kind')[TEMPLATE_FILE]);
  });

  it('writes template delimiters as Helm strings that render back to them', () => {
    expect(helmLiteral('a {{ $value | humanize }} b {{x}}')).toBe('a {{ "{{" }} $value | humanize {{ "}}" }} b {{ "{{" }}x{{ "}}" }}');
    expect(helmLiteral('no templates')).toBe('no templates');
  });
});
